# -*- test-case-name: tests.test_http_compression -*-
"""
C{compressionLevel}: gzip responses for clients that accept it.

As in Linkerd, C{-1} (the default) compresses textual content types at
level 6, C{1} to C{9} compress any content type at that level, and C{0}
turns compression off.  A response is compressed only when the request's
C{Accept-Encoding} allows gzip, the response has no C{Content-Encoding},
may carry a body, is not a range (206) and does not say
C{Cache-Control: no-transform}.  Whole bodies under L{MIN_SIZE} are left
alone (gzip would only add bytes); streamed bodies are compressed as they
flow, each piece flushed so that streaming stays streaming, with the flow
control of the original stream.
"""

from __future__ import annotations

import zlib

from twisted.python.failure import Failure

from protocols.http.message import BodyStream, Headers, Request, Response, bodiless

MIN_SIZE = 1024
"""Whole bodies smaller than this are sent as they are."""

_TEXTUAL = frozenset(
    [
        b"application/json",
        b"application/javascript",
        b"application/x-javascript",
        b"application/ecmascript",
        b"application/xml",
        b"application/graphql",
        b"application/x-www-form-urlencoded",
    ]
)


def isTextual(contentType: bytes) -> bool:
    """Whether a C{Content-Type} value names a textual media type."""
    media = contentType.split(b";", 1)[0].strip().lower()
    return media.startswith(b"text/") or media in _TEXTUAL or media.endswith((b"+json", b"+xml"))


def acceptsGzip(acceptEncoding: bytes) -> bool:
    """
    Whether an C{Accept-Encoding} value allows gzip: listed (or C{*}
    listed and gzip not named) with a quality above zero.
    """
    value = acceptEncoding.lower()
    if b"gzip" not in value and b"*" not in value:
        return False
    star: bool | None = None
    for item in value.split(b","):
        coding, _, params = item.partition(b";")
        coding = coding.strip()
        if coding not in (b"gzip", b"x-gzip", b"*"):
            continue
        allowed = True
        for param in params.split(b";"):
            name, _, q = param.partition(b"=")
            if name.strip() == b"q":
                try:
                    allowed = float(q) > 0
                except ValueError:
                    allowed = False
        if coding == b"*":
            star = allowed
        else:
            return allowed
    return bool(star)


class Compressor:
    """Compresses the responses that qualify (see the module docstring)."""

    __slots__ = ("level", "textualOnly")

    def __init__(self, compressionLevel: int) -> None:
        self.textualOnly = compressionLevel == -1
        self.level = 6 if compressionLevel == -1 else compressionLevel

    @classmethod
    def forLevel(cls, compressionLevel: int) -> Compressor | None:
        """The compressor for a C{compressionLevel}, C{None} when it is C{0}."""
        return cls(compressionLevel) if compressionLevel else None

    def __call__(self, request: Request, response: Response) -> Response:
        """C{response}, compressed in place when it qualifies."""
        accept = request.headers.get(b"accept-encoding")
        if accept is None or not acceptsGzip(accept):
            return response
        body = response.body
        headers = response.headers
        if (
            bodiless(request.method, response.status)
            or response.status == 206
            or (isinstance(body, bytes) and len(body) < MIN_SIZE)
            or (isinstance(body, BodyStream) and body.tunnel)
            or b"content-encoding" in headers
            or b"no-transform" in b",".join(headers.getAll(b"cache-control")).lower()
        ):
            return response
        if self.textualOnly and not isTextual(headers.get(b"content-type") or b""):
            return response
        if isinstance(body, bytes):
            compressor = zlib.compressobj(self.level, zlib.DEFLATED, 31)
            response.body = compressor.compress(body) + compressor.flush()
        else:
            response.body = _GzipStream(body, self.level).output
        _markEncoded(headers)
        return response


def _markEncoded(headers: Headers) -> None:
    headers.add(b"Content-Encoding", b"gzip")
    vary = b",".join(headers.getAll(b"vary"))
    if not vary:
        headers.add(b"Vary", b"Accept-Encoding")
    elif b"accept-encoding" not in vary.lower() and vary.strip() != b"*":
        headers.set(b"Vary", vary + b", Accept-Encoding")
    etag = headers.get(b"etag")
    if etag is not None and etag.startswith(b'"'):
        headers.set(b"ETag", b"W/" + etag)  # the gzip bytes differ from the original's


class _GzipStream:
    """
    Consumes a streamed body and feeds its gzip form into L{output}, a new
    stream whose consumer's flow control reaches the original's source.
    """

    __slots__ = ("compressor", "output", "source")

    def __init__(self, source: BodyStream, level: int) -> None:
        self.source = source
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        self.output = BodyStream(self)
        source.attach(self)

    # -- consumer of the original body

    def bodyData(self, data: bytes) -> None:
        compressor = self.compressor
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if out:
            self.output.write(out)

    def bodyEnd(self, trailers: Headers | None) -> None:
        self.output.write(self.compressor.flush())
        self.output.finish(trailers)

    def bodyError(self, reason: Failure) -> None:
        self.output.fail(reason)

    # -- source of the compressed body

    def pauseProducing(self) -> None:
        self.source.pauseProducing()

    def resumeProducing(self) -> None:
        self.source.resumeProducing()

    def stopProducing(self) -> None:
        self.source.stopProducing()
