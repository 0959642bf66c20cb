# -*- test-case-name: tests.test_http_message -*-
"""
Lean HTTP/1.x messages and streamed bodies.

A message's C{body} is either C{bytes} (complete; a request with such a body
can be replayed) or a L{BodyStream} that a connection pushes data into and
another connection drains.  Framing headers (C{Content-Length},
C{Transfer-Encoding}) and hop-by-hop headers are the codecs' business: a
parsed message does not carry them (except on bodiless responses, where
C{Content-Length} describes the resource), and a serializer adds what its
connection needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from twisted.internet.interfaces import ITransport
from twisted.python.failure import Failure

from linkrouter._transport import write

Header = tuple[bytes, bytes]


class Headers:
    """
    An ordered list of C{(name, value)} pairs: names keep their case on the
    wire and compare case-insensitively in every helper.  C{raw} is the list
    itself, for code that needs to walk it.
    """

    __slots__ = ("raw",)

    def __init__(self, raw: Iterable[Header] = ()) -> None:
        self.raw: list[Header] = list(raw)

    def __repr__(self) -> str:
        return f"Headers({self.raw!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self.raw == other.raw

    def __iter__(self) -> Iterator[Header]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __contains__(self, name: bytes) -> bool:
        return self.get(name) is not None

    def get(self, name: bytes, default: bytes | None = None) -> bytes | None:
        """The first value of header C{name}, or C{default}."""
        name = name.lower()
        for n, v in self.raw:
            if n.lower() == name:
                return v
        return default

    def getAll(self, name: bytes) -> list[bytes]:
        """Every value of header C{name}, in order."""
        name = name.lower()
        return [v for n, v in self.raw if n.lower() == name]

    def add(self, name: bytes, value: bytes) -> None:
        self.raw.append((name, value))

    def set(self, name: bytes, value: bytes) -> None:
        """Replace every value of C{name} with C{value}."""
        self.remove(name)
        self.raw.append((name, value))

    def remove(self, name: bytes) -> None:
        name = name.lower()
        self.raw = [h for h in self.raw if h[0].lower() != name]

    def removeWhere(self, pred: Callable[[bytes], bool]) -> None:
        """Remove every header whose lower-cased name satisfies C{pred}."""
        self.raw = [h for h in self.raw if not pred(h[0].lower())]

    def copy(self) -> Headers:
        return Headers(self.raw)


class BodyConsumer(Protocol):
    """Where a L{BodyStream} delivers its data."""

    def bodyData(self, data: bytes) -> None: ...

    def bodyEnd(self, trailers: Headers | None) -> None: ...

    def bodyError(self, reason: Failure) -> None: ...


class BodySource(Protocol):
    """What feeds a L{BodyStream} (a connection): an C{IPushProducer}."""

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def stopProducing(self) -> None: ...


class BodyStream:
    """
    A body pushed by a source connection into one consumer, with flow control
    both ways.

    The source calls L{write}, L{finish} or L{fail}.  Until a consumer is
    attached, data is held, and the source is paused once more than
    C{highWater} bytes are waiting, so nothing grows without bound.  The
    consumer's transport drives L{pauseProducing}/L{resumeProducing} (this
    object is an C{IPushProducer}), which pause the source; L{stopProducing}
    abandons the body and stops the source.

    @ivar length: the body's length if the sender declared it, else C{None}.
    @ivar tunnel: C{True} for the bytes after an upgrade or C{CONNECT}: no
        framing at all, the stream ends when a side closes.
    """

    __slots__ = (
        "_buffered",
        "_consumer",
        "_ended",
        "_error",
        "_paused",
        "_sourcePaused",
        "_trailers",
        "highWater",
        "length",
        "source",
        "tunnel",
    )

    def __init__(
        self,
        source: BodySource | None,
        length: int | None = None,
        tunnel: bool = False,
        highWater: int = 65536,
    ) -> None:
        self.source = source
        self.length = length
        self.tunnel = tunnel
        self.highWater = highWater
        self._consumer: BodyConsumer | None = None
        self._buffered: list[bytes] = []
        self._ended = False
        self._trailers: Headers | None = None
        self._error: Failure | None = None
        self._paused = False
        self._sourcePaused = False

    # -- source side

    def write(self, data: bytes) -> None:
        consumer = self._consumer
        if consumer is not None:
            consumer.bodyData(data)
            return
        self._buffered.append(data)
        if not self._sourcePaused and sum(map(len, self._buffered)) > self.highWater:
            self._pauseSource()

    def finish(self, trailers: Headers | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self._trailers = trailers
        self.source = None
        if self._consumer is not None:
            self._consumer.bodyEnd(trailers)

    def fail(self, reason: Failure) -> None:
        if self._ended:
            return
        self._ended = True
        self._error = reason
        self.source = None
        if self._consumer is not None:
            self._consumer.bodyError(reason)

    @property
    def ended(self) -> bool:
        return self._ended

    # -- consumer side

    def attach(self, consumer: BodyConsumer) -> None:
        """Start delivering to C{consumer}: held data first, then live data."""
        if self._consumer is not None:
            raise RuntimeError("a body stream has one consumer")
        self._consumer = consumer
        buffered, self._buffered = self._buffered, []
        for chunk in buffered:
            consumer.bodyData(chunk)
        if self._error is not None:
            consumer.bodyError(self._error)
        elif self._ended:
            consumer.bodyEnd(self._trailers)
        elif self._sourcePaused and not self._paused:
            self._resumeSource()

    def pauseProducing(self) -> None:
        self._paused = True
        self._pauseSource()

    def resumeProducing(self) -> None:
        self._paused = False
        if self._consumer is not None:
            self._resumeSource()

    def stopProducing(self) -> None:
        """The consumer gives up: stop the source; no more data is wanted."""
        source, self.source = self.source, None
        self._ended = True
        self._consumer = None
        self._buffered = []
        if source is not None:
            source.stopProducing()

    def _pauseSource(self) -> None:
        if not self._sourcePaused and self.source is not None:
            self._sourcePaused = True
            self.source.pauseProducing()

    def _resumeSource(self) -> None:
        if self._sourcePaused:
            self._sourcePaused = False
            if self.source is not None:
                self.source.resumeProducing()


Body = bytes | BodyStream


class Request:
    """
    An HTTP request.  C{version} is C{b"1.1"} or C{b"1.0"}; C{uri} is the
    request target as received.  C{ctx} carries per-request values between
    layers (peer addresses, the local dtab, ...).
    """

    __slots__ = ("body", "ctx", "headers", "method", "uri", "version")

    def __init__(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        body: Body = b"",
        version: bytes = b"1.1",
    ) -> None:
        self.method = method
        self.uri = uri
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self.version = version
        self.ctx: dict[str, object] = {}

    def __repr__(self) -> str:
        return f"<Request {self.method!r} {self.uri!r} HTTP/{self.version.decode()}>"

    @property
    def path(self) -> bytes:
        """The path of the request target, without query string."""
        uri = self.uri
        if not uri.startswith(b"/"):
            # absolute-form: scheme://authority/path
            i = uri.find(b"://")
            j = uri.find(b"/", i + 3) if i >= 0 else -1
            uri = uri[j:] if j >= 0 else b"/"
        q = uri.find(b"?")
        return uri if q < 0 else uri[:q]

    @property
    def isUpgrade(self) -> bool:
        return self.method == b"CONNECT" or (isinstance(self.body, BodyStream) and self.body.tunnel)


class Response:
    """An HTTP response; C{reason} empty means the standard phrase."""

    __slots__ = ("body", "headers", "reason", "status", "version")

    def __init__(
        self,
        status: int,
        headers: Headers | None = None,
        body: Body = b"",
        reason: bytes = b"",
        version: bytes = b"1.1",
    ) -> None:
        self.status = status
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self.reason = reason
        self.version = version

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


def bodiless(method: bytes, status: int) -> bool:
    """Whether a response to C{method} with C{status} has no body at all."""
    return method == b"HEAD" or status < 200 or status in (204, 304)


HOP_BY_HOP = frozenset(
    [
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"content-length",
    ]
)
"""Headers a codec consumes and never forwards (C{Content-Length} is framing)."""


REASONS: dict[int, bytes] = {
    100: b"Continue",
    101: b"Switching Protocols",
    200: b"OK",
    201: b"Created",
    202: b"Accepted",
    204: b"No Content",
    206: b"Partial Content",
    301: b"Moved Permanently",
    302: b"Found",
    304: b"Not Modified",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Payload Too Large",
    414: b"URI Too Long",
    417: b"Expectation Failed",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


def serializeHead(firstLine: bytes, headers: Iterable[Header], extra: bytes = b"") -> bytes:
    """The message head: first line, headers, C{extra} header lines, blank line."""
    parts = [firstLine, b"\r\n"]
    for n, v in headers:
        parts += (n, b": ", v, b"\r\n")
    parts.append(extra)
    parts.append(b"\r\n")
    return b"".join(parts)


_CODEC = HOP_BY_HOP | {b"expect", b"host"}
"""Header names that L{parseHeaders} looks at; it passes every other one along."""

_PLAIN_CONNECTION = frozenset([b"keep-alive", b"close"])
"""C{Connection} values that name no header to drop."""


def parseHeaders(
    raw: list[Header], upgrade: bool
) -> tuple[Headers, int | None, bool, bool, bool, int]:
    """
    Split parsed headers into forwardable ones and what the codec needs.

    @param upgrade: keep C{Upgrade} and C{Connection: upgrade} (tunnelling).
    @return: C{(headers, contentLength, chunked, expectContinue,
        transferCoded, hosts)}: C{contentLength} is C{-1} when the header is
        present but invalid; C{chunked} when the last transfer coding is
        C{chunked}; C{transferCoded} when C{Transfer-Encoding} is present at
        all; C{hosts} counts the C{Host} headers.
    """
    length: int | None = None
    chunked = False
    coded = False
    expect = False
    hosts = 0
    tokens: list[bytes] = []
    kept: list[Header] = []
    dropped = False
    for h in raw:
        n = h[0].lower()
        if n not in _CODEC:
            kept.append(h)
        elif n == b"host":
            hosts += 1
            kept.append(h)
        elif n == b"content-length":
            dropped = True
            v = h[1].strip()
            valid = v.isdigit() and (length is None or int(v) == length)
            length = int(v) if valid else -1
        elif n == b"connection":
            dropped = True
            v = h[1].lower()
            if v not in _PLAIN_CONNECTION:
                tokens += [t.strip() for t in v.split(b",")]
        elif n == b"transfer-encoding":
            dropped = True
            coded = True
            chunked = h[1].rsplit(b",", 1)[-1].strip().lower() == b"chunked"
        elif n == b"expect":
            dropped = True
            expect = h[1].lower() == b"100-continue"
        else:  # the other hop-by-hop headers
            dropped = True
            if n == b"upgrade" and upgrade:
                kept.append(h)
    # Tokens that name hop-by-hop headers (keep-alive, close, ...) are gone already.
    named = frozenset(tokens).difference(HOP_BY_HOP, (b"close",)) if tokens else None
    if named:
        kept = [h for h in kept if h[0].lower() not in named]
    elif not dropped:
        kept = raw
    return Headers(kept), length, chunked, expect, coded, hosts


class BodyWriter:
    """
    Writes a streamed body (a L{BodyStream}'s consumer side) to one
    connection, chunk-framed (in chunks of at most C{maxChunk} bytes: larger
    pieces are split, as Linkerd's C{maxChunkKB} does) or as is.  Subclasses
    say which transport and what to do once the body has ended.
    """

    __slots__ = ("chunked", "maxChunk")

    def __init__(self, chunked: bool, maxChunk: int = 8192) -> None:
        self.chunked = chunked
        self.maxChunk = maxChunk

    def transport(self) -> ITransport | None:
        """The connection's transport, or C{None} once it is gone."""
        raise NotImplementedError

    def ended(self) -> None:
        """The whole body has been written."""

    def bodyData(self, data: bytes) -> None:
        transport = self.transport()
        if not data or transport is None:
            return
        if self.chunked:
            size = self.maxChunk
            if len(data) <= size:
                write(transport, b"%x\r\n%s\r\n" % (len(data), data))
            else:
                view = memoryview(data)
                write(
                    transport,
                    b"".join(
                        b"%x\r\n%s\r\n" % (len(piece), piece)
                        for piece in (view[i : i + size] for i in range(0, len(data), size))
                    ),
                )
        else:
            write(transport, data)

    def bodyEnd(self, trailers: Headers | None) -> None:
        transport = self.transport()
        if transport is None:
            return
        transport.unregisterProducer()  # type: ignore[attr-defined]
        if self.chunked:
            write(transport, serializeHead(b"0", trailers or ()) if trailers else b"0\r\n\r\n")
        self.ended()
