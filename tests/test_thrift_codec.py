"""
Tests for L{protocols.thrift.codec} and L{protocols.thrift.ttwitter}.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from thrift.protocol import TBinaryProtocol, TCompactProtocol
from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.transport import TTransport
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.naming import Dtab
from protocols.thrift.codec import (
    ApplicationExceptionType,
    Message,
    MessageDecoder,
    MessageType,
    ThriftCodecError,
    ThriftProtocol,
    encodeApplicationException,
    frame,
    readApplicationException,
)
from protocols.thrift.ttwitter import RequestHeader, upgradeCall, upgradeReply

BINARY = ThriftProtocol.BINARY
COMPACT = ThriftProtocol.COMPACT

# Hex examples of the spec (section 10).
T1 = bytes.fromhex("80010001 00000004 70696e67 00000001 00")
T3 = bytes.fromhex(
    "80010003 00000004 70696e67 00000001 0b0001 00000026"
    + b"Internal error processing ping: 'boom'".hex()
    + "080002 00000006 00"
)
T5_COMPACT_EXCEPTION = bytes.fromhex("8261010470696e671804626f6f6d150c00")
T6 = bytes.fromhex(
    "00000028 80010001 0000001b" + b"__can__finagle__trace__v3__".hex() + "00000000 00"
)
T7 = bytes.fromhex(
    "0000003e 0a0001 2122232425262728 0a0002 0102030405060708 0a0007 0000000000000000"
    "0b0009 00000004 2f666f6f 00 80010001 00000004 70696e67 00000001 00"
)


def decodeAll(decoder: MessageDecoder, chunks: list[bytes]) -> list[Message]:
    out = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (m := decoder.next()) is not None:
            out.append(m)
    return out


def apacheFactory(protocol: ThriftProtocol, strict: bool = True) -> Any:
    if protocol is COMPACT:
        return TCompactProtocol.TCompactProtocolFactory()
    return TBinaryProtocol.TBinaryProtocolFactory(strictWrite=strict)


# A strategy for Thrift values written with the Apache library, so the
# boundary finder is checked against an independent encoder.
_scalars = st.sampled_from(
    [
        (TType.BOOL, st.booleans(), "writeBool"),
        (TType.BYTE, st.integers(-128, 127), "writeByte"),
        (TType.I16, st.integers(-(2**15), 2**15 - 1), "writeI16"),
        (TType.I32, st.integers(-(2**31), 2**31 - 1), "writeI32"),
        (TType.I64, st.integers(-(2**63), 2**63 - 1), "writeI64"),
        (TType.DOUBLE, st.floats(allow_nan=False), "writeDouble"),
        (TType.STRING, st.binary(max_size=40), "writeBinary"),
    ]
)


@st.composite
def fields(draw: Any, depth: int = 0) -> list[Any]:
    """A list of (field id, writer) for one struct."""
    ids = draw(st.lists(st.integers(-40, 300), unique=True, max_size=6))
    out: list[Any] = []
    for fid in ids:
        kind = draw(st.integers(0, 4 if depth < 3 else 0))
        if kind == 0:
            ttype, values, method = draw(_scalars)
            value = draw(values)
            out.append((fid, ttype, lambda p, m=method, v=value: getattr(p, m)(v)))  # type: ignore[misc]
        elif kind == 1:
            inner = draw(fields(depth + 1))
            out.append((fid, TType.STRUCT, lambda p, f=inner: writeStruct(p, f)))
        elif kind in (2, 3):
            ttype, values, method = draw(_scalars)
            items = draw(st.lists(values, max_size=20))
            container = TType.LIST if kind == 2 else TType.SET

            def writeList(p: Any, t: int = ttype, i: list[Any] = items, m: str = method) -> None:
                p.writeListBegin(t, len(i))
                for v in i:
                    getattr(p, m)(v)
                p.writeListEnd()

            out.append((fid, container, writeList))
        else:
            items = draw(st.lists(st.tuples(st.integers(-5, 5), st.booleans()), max_size=5))

            def writeMap(p: Any, i: list[Any] = items) -> None:
                p.writeMapBegin(TType.I32, TType.BOOL, len(i))
                for k, v in i:
                    p.writeI32(k)
                    p.writeBool(v)
                p.writeMapEnd()

            out.append((fid, TType.MAP, writeMap))
    return out


def writeStruct(p: Any, fs: list[Any]) -> None:
    p.writeStructBegin("s")
    for fid, ttype, write in fs:
        p.writeFieldBegin("f", ttype, fid)
        write(p)
        p.writeFieldEnd()
    p.writeFieldStop()
    p.writeStructEnd()


def encodeCall(
    protocol: ThriftProtocol, name: str, mtype: int, seqid: int, fs: list[Any], strict: bool
) -> bytes:
    buf = TTransport.TMemoryBuffer()
    p = apacheFactory(protocol, strict).getProtocol(buf)
    p.writeMessageBegin(name, mtype, seqid)
    writeStruct(p, fs)
    p.writeMessageEnd()
    return buf.getvalue()  # type: ignore[no-any-return]


messages = st.tuples(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12),
    st.sampled_from([1, 2, 3, 4]),
    st.integers(-(2**31), 2**31 - 1),
    fields(),
)


class SplitTests(SynchronousTestCase):
    """Arbitrary splits of a stream of messages give the same messages."""

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(messages, min_size=1, max_size=4),
        st.sampled_from([BINARY, COMPACT]),
        st.booleans(),
        st.booleans(),
        st.lists(st.integers(0, 10_000), max_size=12),
    )
    def test_splits(
        self,
        msgs: list[Any],
        protocol: ThriftProtocol,
        framed: bool,
        strict: bool,
        cuts: list[int],
    ) -> None:
        payloads = [encodeCall(protocol, m[0], m[1], m[2], m[3], strict) for m in msgs]
        stream = b"".join(frame(framed, p) for p in payloads)
        points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
        chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
        decoder = MessageDecoder(protocol, framed)
        out = decodeAll(decoder, chunks)
        self.assertEqual([m.payload for m in out], payloads)
        self.assertEqual([(m.name, int(m.type), m.seqid) for m in out], [m[:3] for m in msgs])
        self.assertEqual(decoder.pending, 0)

    def test_byteByByte(self) -> None:
        """Several buffered messages fed one byte at a time."""
        stream = (T1 + bytes.fromhex("80010001 00000001 78 00000002 0b0001 00000003 616263 00")) * 3
        out = decodeAll(MessageDecoder(BINARY, False), [bytes([b]) for b in stream])
        self.assertEqual([(m.name, m.seqid) for m in out], [("ping", 1), ("x", 2)] * 3)


class HeaderTests(SynchronousTestCase):
    def test_strictAndNonStrict(self) -> None:
        nonStrict = bytes.fromhex("00000004 70696e67 01 00000001 00")
        for data in (T1, nonStrict):
            (m,) = decodeAll(MessageDecoder(BINARY, False), [data])
            self.assertEqual(
                (m.name, m.type, m.seqid, m.payload), ("ping", MessageType.CALL, 1, data)
            )

    def test_compactSeqids(self) -> None:
        """Compact seqids are plain varints read back as signed i32."""
        for hexSeqid, seqid in (("01", 1), ("ac02", 300), ("ffffffff0f", -1)):
            data = bytes.fromhex("8221" + hexSeqid + "0470696e6700")
            (m,) = decodeAll(MessageDecoder(COMPACT, False), [data])
            self.assertEqual((m.name, m.seqid), ("ping", seqid))

    def test_exceptionEncoding(self) -> None:
        self.assertEqual(
            encodeApplicationException(BINARY, "ping", 1, "Internal error processing ping: 'boom'"),
            T3,
        )
        self.assertEqual(
            encodeApplicationException(COMPACT, "ping", 1, "boom"), T5_COMPACT_EXCEPTION
        )

    def test_exceptionReadByApache(self) -> None:
        for protocol in (BINARY, COMPACT):
            data = encodeApplicationException(
                protocol, "m", -7, "why", ApplicationExceptionType.UNKNOWN
            )
            p = apacheFactory(protocol).getProtocol(TTransport.TMemoryBuffer(data))
            self.assertEqual(p.readMessageBegin(), ("m", TMessageType.EXCEPTION, -7))
            e = TApplicationException()
            e.read(p)
            self.assertEqual((e.type, e.message), (0, "why"))
            self.assertEqual(
                readApplicationException(protocol, data), (ApplicationExceptionType.UNKNOWN, "why")
            )

    def test_ttwitterExamples(self) -> None:
        """The spec's upgrade call and upgraded request (T6, T7)."""
        self.assertEqual(frame(True, upgradeCall(BINARY)), T6)
        self.assertEqual(upgradeReply(BINARY, 0)[3], MessageType.REPLY)
        header = RequestHeader(traceId=0x2122232425262728, spanId=0x0102030405060708, dest="/foo")
        decoder = MessageDecoder(BINARY, True, prefixed=True)
        (m,) = decodeAll(decoder, [T7])
        self.assertEqual((m.name, m.payload), ("ping", T1))
        self.assertEqual(RequestHeader.decode(BINARY, m.prefix), header)

    def test_requestHeaderRoundTrip(self) -> None:
        header = RequestHeader(
            traceId=-5,
            spanId=6,
            parentSpanId=7,
            sampled=True,
            clientId="me",
            flags=3,
            contexts=((b"k", b"v"),) * 16,
            dest="/svc/users",
            delegations=(("/a", "/b"), ("/c", "/d|/e")),
            traceIdHigh=9,
        )
        for protocol in (BINARY, COMPACT):
            self.assertEqual(RequestHeader.decode(protocol, header.encode(protocol)), header)
            (m,) = decodeAll(
                MessageDecoder(protocol, False, prefixed=True),
                [header.encode(protocol) + upgradeCall(protocol)],
            )
            self.assertEqual(m.prefix, header.encode(protocol))
        self.assertEqual(header.localDtab(), Dtab.read("/a=>/b;/c=>/d|/e"))


class ErrorTests(SynchronousTestCase):
    def assertRejects(
        self, protocol: ThriftProtocol, framed: bool, data: bytes, text: str, **kw: Any
    ) -> None:
        decoder = MessageDecoder(protocol, framed, **kw)
        decoder.feed(data)
        e = self.assertRaises(ThriftCodecError, decoder.next)
        self.assertIn(text, str(e))

    def test_garbage(self) -> None:
        self.assertRejects(BINARY, False, b"GET / HTTP/1.1\r\n\r\n", "method name of")
        self.assertRejects(BINARY, False, b"\x80\x02\x00\x01\x00", "bad binary protocol version")
        self.assertRejects(COMPACT, False, b"\x16\x03\x01\x00", "not a compact")
        self.assertRejects(BINARY, True, b"\x80\x01\x00\x01" + T1, "negative frame length")
        self.assertRejects(
            BINARY,
            False,
            bytes.fromhex("80010001 00000001 78 00000002 63 0001"),
            "unknown field type 99",
        )
        self.assertRejects(
            BINARY,
            False,
            bytes.fromhex("80010007 00000001 78 00000002 00"),
            "unknown message type 7",
        )

    def test_oversized(self) -> None:
        self.assertRejects(
            BINARY, True, b"\x00\x01\x00\x00", "exceeds the limit", maxMessageSize=1000
        )
        big = bytes.fromhex("80010001 00000001 78 00000002 0b0001 00100000") + b"x" * 2000
        self.assertRejects(BINARY, False, big, "out of range", maxMessageSize=1000)
        # a message that keeps growing without ending
        endless = (
            bytes.fromhex("80010001 00000001 78 00000002") + bytes.fromhex("080001 00000000") * 200
        )
        self.assertRejects(BINARY, False, endless, "larger than the limit", maxMessageSize=1000)

    def test_deepNesting(self) -> None:
        deep = bytes.fromhex("80010001 00000001 78 00000002") + bytes.fromhex("0c0001") * 100
        self.assertRejects(BINARY, False, deep, "nested deeper")

    def test_truncatedFrame(self) -> None:
        self.assertRejects(BINARY, True, frame(True, T1[:6]), "ends inside the message header")

    def test_truncatedStreamIsPending(self) -> None:
        decoder = MessageDecoder(COMPACT, False)
        decoder.feed(b"\x82\x21\x01\x04pi")
        self.assertIsNone(decoder.next())
        self.assertEqual(decoder.pending, 6)
