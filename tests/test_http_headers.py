"""
Tests for L{protocols.http.headers}, L{protocols.http.errors},
L{protocols.http.message} and L{protocols.http.accesslog}.
"""

from __future__ import annotations

import os
from urllib.parse import unquote_plus

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from protocols.http import errors
from protocols.http import headers as l5d
from protocols.http.accesslog import AccessLog, AccessLogConfig, rollPolicyError
from protocols.http.message import BodyStream, Headers, Request, Response, parseHeaders

from ._fakes import RecordingProducer


class FakeServer:
    def __init__(self) -> None:
        self.peer = IPv4Address("TCP", "10.0.0.1", 5555)
        self.host = IPv6Address("TCP", "::1", 4140)
        self.ctx: dict[str, object] = {}


class HeaderTests(SynchronousTestCase):
    def test_prepareRequest(self) -> None:
        r = Request(b"GET", b"/", Headers([(b"Via", b"1.1 a"), (b"l5d-dst-service", b"spoof")]))
        l5d.prepareRequest(r, b"/svc/a", b"/$/inet/h/1", b"/rest")
        h = r.headers
        self.assertEqual(h.get(b"l5d-dst-service"), b"/svc/a")
        self.assertEqual(h.get(b"l5d-dst-client"), b"/$/inet/h/1")
        self.assertEqual(h.get(b"l5d-dst-residual"), b"/rest")
        self.assertEqual(len(h.get(b"l5d-reqid") or b""), 16)
        self.assertEqual(h.getAll(b"via"), [b"1.1 a, 1.1 linkrouter"])
        self.assertEqual(l5d.callDepth(r), 2)

    def test_prepareRequestKeepsReqidAndAddsViaOnce(self) -> None:
        """A retried request keeps its C{l5d-reqid} and gets this router's C{Via} once."""
        r = Request(b"GET", b"/", Headers([(b"L5d-Reqid", b"abc"), (b"X", b"1")]))
        l5d.prepareRequest(r, b"/svc/a", b"/$/inet/h/1", b"/")
        l5d.prepareRequest(r, b"/svc/a", b"/$/inet/h/2")
        self.assertEqual(
            r.headers.raw,
            [
                (b"L5d-Reqid", b"abc"),
                (b"X", b"1"),
                (b"l5d-dst-service", b"/svc/a"),
                (b"l5d-dst-client", b"/$/inet/h/2"),
                (b"Via", b"1.1 linkrouter"),
            ],
        )

    def test_annotateWithPrebuiltHeaders(self) -> None:
        """L{l5d.annotate} with built headers does what L{l5d.prepareRequest} does."""
        service = l5d.serviceHeader(b"/svc/a")
        client = l5d.clientHeaders(b"/$/inet/h/1", b"/rest")
        r = Request(b"GET", b"/", Headers([(b"l5d-reqid", b"1")]))
        l5d.annotate(r, service, client)
        expected = Request(b"GET", b"/", Headers([(b"l5d-reqid", b"1")]))
        l5d.prepareRequest(expected, b"/svc/a", b"/$/inet/h/1", b"/rest")
        self.assertEqual(r.headers, expected.headers)

    def test_prepareResponse(self) -> None:
        resp = l5d.prepareResponse(Response(200))
        self.assertEqual(resp.headers.raw, [(b"Via", b"1.1 linkrouter")])
        prior = Response(200, Headers([(b"via", b"1.1 a"), (b"X", b"1"), (b"Via", b"1.0 b")]))
        self.assertEqual(
            l5d.prepareResponse(prior).headers.raw,
            [(b"X", b"1"), (b"Via", b"1.1 a, 1.0 b, 1.1 linkrouter")],
        )

    def test_scanRequest(self) -> None:
        """
        One pass gives the call depth and marks a request without C{l5d-*}
        or C{dtab-local} headers as plain, and one that accepts encodings.
        """
        plain = Request(b"GET", b"/", Headers([(b"Via", b"1.1 a, 1.1 b"), (b"VIA", b"1.0 c")]))
        self.assertEqual(l5d.scanRequest(plain), 3)
        self.assertEqual(l5d.callDepth(plain), 3)
        self.assertEqual(plain.ctx, {l5d.PLAIN: True})
        for name in (b"L5d-Ctx-Deadline", b"l5d-dtab", b"Dtab-Local", b"l5d-reqid"):
            r = Request(b"GET", b"/", Headers([(name, b"x"), (b"Accept-Encoding", b"gzip")]))
            self.assertEqual(l5d.scanRequest(r), 0)
            self.assertEqual(r.ctx, {l5d.ACCEPTS_ENCODING: True}, name)

    def test_clearContext(self) -> None:
        r = Request(
            b"GET",
            b"/",
            Headers([(b"L5d-Ctx-Trace", b"x"), (b"l5d-dtab", b"/a=>/b"), (b"X", b"1")]),
        )
        self.assertEqual(l5d.contextHeaders(r), {b"l5d-ctx-trace": b"x"})
        l5d.clearContext(r)
        self.assertEqual(r.headers.raw, [(b"X", b"1")])

    def test_localDtabOrder(self) -> None:
        r = Request(
            b"GET",
            b"/",
            Headers(
                [(b"l5d-dtab", b"/c=>/d"), (b"dtab-local", b"/b=>/c"), (b"l5d-ctx-dtab", b"/a=>/b")]
            ),
        )
        self.assertEqual(l5d.localDtab(r), "/a=>/b;/b=>/c;/c=>/d")
        self.assertEqual(r.headers.raw, [(b"l5d-ctx-dtab", b"/a=>/b;/b=>/c;/c=>/d")])
        self.assertEqual(l5d.localDtab(Request(b"GET", b"/")), "")

    def test_forwarded(self) -> None:
        r = Request(b"GET", b"/", Headers([(b"Host", b"web")]))
        r.ctx["server"] = FakeServer()
        l5d.addForwarded(
            r,
            l5d.labeler(l5d.LabelerConfig("ip:port")),
            l5d.labeler(l5d.LabelerConfig("ip")),
        )
        self.assertEqual(
            r.headers.get(b"forwarded"), b'by="[::1]:4140";for=10.0.0.1;host="web";proto=http'
        )
        static = l5d.labeler(l5d.LabelerConfig("static", "linkerd"))
        conn = l5d.labeler(l5d.LabelerConfig("connectionRandom"))
        first, second = conn(None, r), conn(None, r)
        self.assertEqual(first, second)
        self.assertTrue(first.startswith("_"))
        self.assertEqual(static(None, r), "_linkerd")
        self.assertEqual(l5d.labeler(l5d.LabelerConfig("router"), "int")(None, r), "_int")
        self.assertNotEqual(
            l5d.labeler(l5d.LabelerConfig())(None, r), l5d.labeler(l5d.LabelerConfig())(None, r)
        )
        self.assertRaises(ValueError, l5d.labeler, l5d.LabelerConfig("nope"))

    def test_timestamp(self) -> None:
        r = Request(b"GET", b"/")
        l5d.addTimestamp(r, b"x-ts", 12.5)
        self.assertEqual(r.headers.get(b"x-ts"), b"12500")


class ErrorTests(SynchronousTestCase):
    def test_noHosts(self) -> None:
        resp = errors.noHosts("/svc/foo", "dtab: /svc=>/#/io.l5d.fs\n/svc/foo\n  neg")
        self.assertEqual(resp.status, 502)
        assert isinstance(resp.body, bytes)
        self.assertTrue(resp.body.startswith(b"No hosts are available for /svc/foo\n\ndtab:"))
        err = resp.headers.get(b"l5d-err")
        assert err is not None
        self.assertNotIn(b"\n", err)
        self.assertTrue(unquote_plus(err.decode()).startswith("No hosts are available"))

    def test_truncated(self) -> None:
        resp = errors.errorResponse(400, "x" * 5000, maxErrResponseKB=1)
        assert isinstance(resp.body, bytes)
        self.assertEqual(len(resp.body), 1024)

    def test_fromFailure(self) -> None:
        refused = errors.fromFailure(Failure(errors.ConnectionFailed("refused")))
        self.assertEqual((refused.status, refused.headers.get(b"l5d-retryable")), (502, b"true"))
        lost = errors.fromFailure(Failure(errors.ConnectionClosed("gone")))
        self.assertEqual((lost.status, lost.headers.get(b"l5d-retryable")), (502, None))
        self.assertEqual(errors.fromFailure(Failure(errors.PoolExhausted("full"))).status, 503)
        from twisted.internet.defer import TimeoutError

        self.assertEqual(errors.fromFailure(Failure(TimeoutError())).status, 504)
        self.assertEqual(errors.overloaded(10).status, 503)
        self.assertEqual(errors.timeout("/svc/a", 100).status, 504)
        self.assertEqual(errors.unidentified("no host").status, 400)


class MessageTests(SynchronousTestCase):
    def test_parseHeaders(self) -> None:
        h, length, chunked, expect, coded, hosts = parseHeaders(
            [(b"Content-Length", b"5"), (b"Connection", b"X-A"), (b"X-A", b"1"), (b"B", b"2")],
            False,
        )
        self.assertEqual(
            (h.raw, length, chunked, expect, coded, hosts),
            ([(b"B", b"2")], 5, False, False, False, 0),
        )
        self.assertEqual(parseHeaders([(b"Content-Length", b"x")], False)[1], -1)

    def test_parseTransferCodings(self) -> None:
        """Only a last coding of C{chunked} frames the body in chunks."""
        for value, chunked in [
            (b"chunked", True),
            (b"gzip, Chunked ", True),
            (b"xchunked", False),
            (b"chunked, gzip", False),
        ]:
            _, _, isChunked, _, coded, _ = parseHeaders([(b"Transfer-Encoding", value)], False)
            self.assertEqual((isChunked, coded), (chunked, True), value)

    def test_parseCountsHosts(self) -> None:
        hosts = parseHeaders([(b"Host", b"a"), (b"host", b"b")], False)[5]
        self.assertEqual(hosts, 2)

    def test_streamBuffersThenPausesSource(self) -> None:
        source = RecordingProducer()
        events = source.calls
        stream = BodyStream(source, highWater=10)
        stream.write(b"12345")
        stream.write(b"678901")
        self.assertEqual(events, ["pause"])
        got: list[object] = []

        class Consumer:
            def bodyData(self, data: bytes) -> None:
                got.append(data)

            def bodyEnd(self, trailers: Headers | None) -> None:
                got.append("end")

            def bodyError(self, reason: Failure) -> None:
                got.append(reason)

        stream.attach(Consumer())
        self.assertEqual(events, ["pause", "resume"])
        stream.finish()
        self.assertEqual(got, [b"12345", b"678901", "end"])
        other = BodyStream(source)
        other.stopProducing()
        self.assertEqual(events[-1], "stop")


class AccessLogTests(SynchronousTestCase):
    def test_line(self) -> None:
        path = os.path.join(self.mktemp())
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        log = AccessLog(AccessLogConfig(path, "10.megabytes", True, 3))
        self.addCleanup(log.close)
        log(Request(b"GET", b"/x?y"), Response(200, body=b"hello"), FakeServer())
        with open(path) as f:
            line = f.read()
        self.assertRegex(line, r'^10\.0\.0\.1 - - \[.+\] "GET /x\?y HTTP/1\.1" 200 5\n$')
        self.assertIsNone(rollPolicyError("daily"))
        self.assertIsNotNone(rollPolicyError("weekly"))

    def test_dailyKeepsRotateCount(self) -> None:
        """
        Daily rolling keeps C{httpAccessLogRotateCount} rotated files, the
        most recent ones (by their date, not their name's sort order).
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "access.log")
        log = AccessLog(AccessLogConfig(path, "daily", True, 2))
        self.addCleanup(log.close)
        for day in (9, 10, 11, 12):
            log(Request(b"GET", b"/"), Response(200, body=b""), FakeServer())
            log.file.lastDate = (2026, 1, day)  # type: ignore[union-attr]
            log.file.rotate()
        self.assertEqual(
            sorted(os.listdir(directory)),
            ["access.log", "access.log.2026_1_11", "access.log.2026_1_12"],
        )
