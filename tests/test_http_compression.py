"""
Tests for L{protocols.http.compression} (C{compressionLevel}): which
responses are compressed, whole and streamed bodies, and a router built
from YAML compressing for clients that ask.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from protocols.http.compression import Compressor, acceptsGzip, isTextual
from protocols.http.message import BodyStream, Headers, Request, Response
from tests._fakes import RecordingProducer
from tests.test_http_router import Backend, RouterCase, raw, simpleRouter

TEXT = b"hello, compressible world. " * 100


def request(accept: bytes | None = b"gzip", method: bytes = b"GET") -> Request:
    headers = Headers([(b"Accept-Encoding", accept)] if accept is not None else [])
    return Request(method, b"/", headers)


def response(
    body: bytes | BodyStream = TEXT, contentType: bytes = b"text/plain", status: int = 200
) -> Response:
    return Response(status, Headers([(b"Content-Type", contentType)]), body)


class Sink:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.ended: Headers | bool | None = False
        self.error: Failure | None = None

    def bodyData(self, data: bytes) -> None:
        self.data.append(data)

    def bodyEnd(self, trailers: Headers | None) -> None:
        self.ended = trailers

    def bodyError(self, reason: Failure) -> None:
        self.error = reason


class NegotiationTests(SynchronousTestCase):
    def test_acceptsGzip(self) -> None:
        for value, expected in [
            (b"gzip", True),
            (b"deflate, gzip;q=0.5", True),
            (b"GZIP", True),
            (b"x-gzip", True),
            (b"*", True),
            (b"gzip;q=0", False),
            (b"gzip; q=0.0, *", False),
            (b"*;q=0", False),
            (b"br, deflate", False),
            (b"identity", False),
            (b"gzip;q=nonsense", False),
            (b"", False),
        ]:
            self.assertEqual(acceptsGzip(value), expected, value)

    def test_isTextual(self) -> None:
        for value, expected in [
            (b"text/html; charset=utf-8", True),
            (b"application/json", True),
            (b"Application/JSON", True),
            (b"application/javascript", True),
            (b"application/xml", True),
            (b"application/problem+json", True),
            (b"image/svg+xml", True),
            (b"image/png", False),
            (b"application/octet-stream", False),
            (b"", False),
        ]:
            self.assertEqual(isTextual(value), expected, value)


class WholeBodyTests(SynchronousTestCase):
    def test_compressed(self) -> None:
        """A large textual body is gzipped; the headers say so."""
        r = Compressor(-1)(request(), response())
        assert isinstance(r.body, bytes)
        self.assertEqual(gzip.decompress(r.body), TEXT)
        self.assertLess(len(r.body), len(TEXT))
        self.assertEqual(r.headers.get(b"content-encoding"), b"gzip")
        self.assertEqual(r.headers.get(b"vary"), b"Accept-Encoding")

    def test_left(self) -> None:
        """Responses that do not qualify are left exactly as they are."""
        cases = [
            (request(None), response()),
            (request(b"identity"), response()),
            (request(b"gzip;q=0"), response()),
            (request(method=b"HEAD"), response()),
            (request(), response(status=204)),
            (request(), response(status=304)),
            (request(), response(status=206)),
            (request(), response(b"short")),
            (request(), response(contentType=b"image/png")),
        ]
        encoded = response()
        encoded.headers.add(b"Content-Encoding", b"br")
        cases.append((request(), encoded))
        noTransform = response()
        noTransform.headers.add(b"Cache-Control", b"public, No-Transform")
        cases.append((request(), noTransform))
        for req, resp in cases:
            body, headers = resp.body, resp.headers.copy()
            result = Compressor(-1)(req, resp)
            self.assertIs(result.body, body)
            self.assertEqual(result.headers, headers)

    def test_levels(self) -> None:
        """
        C{0} is off; an explicit level compresses any content type at that
        level; the automatic level only textual ones.
        """
        self.assertIsNone(Compressor.forLevel(0))
        png = Compressor(9)(request(), response(contentType=b"image/png"))
        assert isinstance(png.body, bytes)
        self.assertEqual(gzip.decompress(png.body), TEXT)
        fast = Compressor(1)(request(), response()).body
        best = Compressor(9)(request(), response()).body
        assert isinstance(fast, bytes) and isinstance(best, bytes)
        self.assertEqual(gzip.decompress(fast), gzip.decompress(best))

    def test_varyAndETag(self) -> None:
        """C{Vary} gains C{Accept-Encoding} once; a strong C{ETag} becomes weak."""
        r = response()
        r.headers.add(b"Vary", b"Origin")
        r.headers.add(b"ETag", b'"abc"')
        Compressor(-1)(request(), r)
        self.assertEqual(r.headers.get(b"vary"), b"Origin, Accept-Encoding")
        self.assertEqual(r.headers.get(b"etag"), b'W/"abc"')
        r = response()
        r.headers.add(b"Vary", b"accept-encoding")
        Compressor(-1)(request(), r)
        self.assertEqual(r.headers.getAll(b"vary"), [b"accept-encoding"])


class StreamTests(SynchronousTestCase):
    def test_streamed(self) -> None:
        """
        A streamed body is compressed piece by piece: each piece is
        decodable as soon as it is written; the end carries the trailers.
        """
        source = RecordingProducer()
        original = BodyStream(source, length=len(TEXT) * 2)
        r = Compressor(-1)(request(), response(original))
        out = r.body
        assert isinstance(out, BodyStream)
        self.assertIsNot(out, original)
        self.assertIsNone(out.length)  # the compressed length is unknown: chunked
        sink = Sink()
        out.attach(sink)
        decoder = zlib.decompressobj(31)
        original.write(TEXT)
        self.assertEqual(decoder.decompress(b"".join(sink.data)), TEXT)
        sink.data.clear()
        original.write(TEXT)
        self.assertEqual(decoder.decompress(b"".join(sink.data)), TEXT)
        sink.data.clear()
        trailers = Headers([(b"X-Sum", b"1")])
        original.finish(trailers)
        self.assertEqual(decoder.decompress(b"".join(sink.data)), b"")
        self.assertTrue(decoder.eof)
        self.assertEqual(sink.ended, trailers)

    def test_flowControl(self) -> None:
        """Pausing, resuming or stopping the compressed stream reaches the source."""
        source = RecordingProducer()
        original = BodyStream(source)
        out = Compressor(-1)(request(), response(original)).body
        assert isinstance(out, BodyStream)
        out.attach(Sink())
        out.pauseProducing()
        out.resumeProducing()
        out.stopProducing()
        self.assertEqual(source.calls, ["pause", "resume", "stop"])

    def test_heldUntilAttached(self) -> None:
        """
        Before the compressed stream has a consumer, what it holds is bounded:
        the source is paused, and resumed once a consumer attaches.
        """
        source = RecordingProducer()
        original = BodyStream(source)
        out = Compressor(9)(request(), response(original, b"application/octet-stream")).body
        assert isinstance(out, BodyStream)
        original.write(os.urandom(200_000))  # incompressible
        self.assertEqual(source.calls, ["pause"])
        sink = Sink()
        out.attach(sink)
        self.assertEqual(source.calls, ["pause", "resume"])
        self.assertTrue(sink.data)

    def test_error(self) -> None:
        source = RecordingProducer()
        original = BodyStream(source)
        out = Compressor(-1)(request(), response(original)).body
        assert isinstance(out, BodyStream)
        sink = Sink()
        out.attach(sink)
        original.fail(Failure(RuntimeError("upstream died")))
        assert sink.error is not None
        self.assertEqual(str(sink.error.value), "upstream died")

    def test_tunnelLeft(self) -> None:
        tunnel = BodyStream(RecordingProducer(), tunnel=True)
        r = Compressor(-1)(request(), response(tunnel, status=101))
        self.assertIs(r.body, tunnel)


def parse(reply: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """The status line, headers (lower-cased names) and body of a raw reply."""
    head, _, body = reply.partition(b"\r\n\r\n")
    line, *lines = head.split(b"\r\n")
    headers = dict((n.lower(), v) for n, _, v in (h.partition(b": ") for h in lines))
    if headers.get(b"transfer-encoding") == b"chunked":
        chunks = []
        while True:
            size, _, body = body.partition(b"\r\n")
            n = int(size, 16)
            if not n:
                break
            chunks.append(body[:n])
            body = body[n + 2 :]
        body = b"".join(chunks)
    return line, headers, body


GET = b"GET / HTTP/1.1\r\nHost: foo\r\nConnection: close\r\n"


class RouterCompressionTests(RouterCase):
    @inlineCallbacks
    def test_router(self) -> Any:
        """
        Through a router: a client that accepts gzip gets the backend's
        large text/html body gzipped; a client that does not (wrk's case)
        gets it as it was; C{compressionLevel: 0} turns it off.
        """
        backend = Backend(self, "A")
        backend.body = TEXT
        router = simpleRouter(self, f"/svc/* => {backend.inet};")
        line, headers, body = parse((yield raw(router.port, GET + b"\r\n")))
        self.assertEqual((line, body), (b"HTTP/1.1 200 OK", TEXT))
        self.assertNotIn(b"content-encoding", headers)
        reply = yield raw(router.port, GET + b"Accept-Encoding: gzip\r\n\r\n")
        line, headers, body = parse(reply)
        self.assertEqual(line, b"HTTP/1.1 200 OK")
        self.assertEqual(headers[b"content-encoding"], b"gzip")
        self.assertEqual(headers[b"vary"], b"Accept-Encoding")
        self.assertEqual(headers[b"content-length"], b"%d" % len(body))
        self.assertEqual(gzip.decompress(body), TEXT)
        off = simpleRouter(self, f"/svc/* => {backend.inet};", "  compressionLevel: 0")
        reply = yield raw(off.port, GET + b"Accept-Encoding: gzip\r\n\r\n")
        line, headers, body = parse(reply)
        self.assertEqual((body, headers.get(b"content-encoding")), (TEXT, None))

    @inlineCallbacks
    def test_streamedThroughRouter(self) -> Any:
        """A body the router streams (over streamAfterContentLengthKB) arrives gzipped, chunked."""
        backend = Backend(self, "A")
        backend.body = TEXT * 10
        router = simpleRouter(self, f"/svc/* => {backend.inet};")
        reply = yield raw(router.port, GET + b"Accept-Encoding: gzip\r\n\r\n")
        _line, headers, body = parse(reply)
        self.assertEqual(headers[b"content-encoding"], b"gzip")
        self.assertEqual(headers[b"transfer-encoding"], b"chunked")
        self.assertEqual(gzip.decompress(body), TEXT * 10)
