# -*- test-case-name: tests.test_thrift_codec -*-
"""
Thrift on the wire, without decoding call arguments.

A router only needs each message's boundaries and its header (method name,
message type, sequence id).  L{MessageDecoder} finds them incrementally for
the framed transport (a 4-byte length) and the buffered one (walk the
message to its end), for the binary protocol (strict and non-strict
headers) and the compact protocol.  The buffered walk is a resumable state
machine (L{_Skipper}): bytes already walked are never walked again, so a
message arriving one byte at a time costs the same as one arriving whole.

The module also writes the messages a router synthesises (exception
replies, the TTwitter upgrade) and reads and writes the few small structs
that TTwitter needs (L{StructWriter}, L{readStruct}).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from typing import Union

import attrs

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ApplicationExceptionType",
    "Message",
    "MessageDecoder",
    "MessageType",
    "StructWriter",
    "ThriftCodecError",
    "ThriftProtocol",
    "encodeApplicationException",
    "encodeMessage",
    "frame",
    "readApplicationException",
    "readStruct",
]

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
"""Largest message (or frame) accepted unless configured otherwise."""

_MAX_DEPTH = 64
"""
Deepest nesting accepted: 64 nested structs, or 32 nested containers (the
skipper keeps two frames for each container level).
"""


class ThriftCodecError(Exception):
    """
    The bytes are not Thrift in the expected transport and protocol: garbage,
    an oversized message, a truncated one, or nesting too deep.
    """


class ThriftProtocol(enum.Enum):
    BINARY = "binary"
    COMPACT = "compact"


class MessageType(enum.IntEnum):
    CALL = 1
    REPLY = 2
    EXCEPTION = 3
    ONEWAY = 4


class ApplicationExceptionType(enum.IntEnum):
    UNKNOWN = 0
    UNKNOWN_METHOD = 1
    INVALID_MESSAGE_TYPE = 2
    WRONG_METHOD_NAME = 3
    BAD_SEQUENCE_ID = 4
    MISSING_RESULT = 5
    INTERNAL_ERROR = 6
    PROTOCOL_ERROR = 7
    INVALID_TRANSFORM = 8
    INVALID_PROTOCOL = 9
    UNSUPPORTED_CLIENT_TYPE = 10


@attrs.frozen
class Message:
    """
    One Thrift message as it travelled.

    @ivar payload: the message bytes (header and body), without the frame
        length and without any TTwitter header.
    @ivar prefix: the TTwitter request or response header struct that
        preceded the message on an upgraded connection, or C{b""}.
    @ivar framed: the whole frame as received (length included), if the
        message arrived framed and without a TTwitter header: what a framed
        peer is sent, with no copy.
    """

    name: str
    type: MessageType
    seqid: int
    payload: bytes
    prefix: bytes = b""
    framed: bytes | None = attrs.field(default=None, eq=False, repr=False)


# Binary type codes; compact codes are translated to these.
T_STOP = 0
T_BOOL = 2
T_BYTE = 3
T_DOUBLE = 4
T_I16 = 6
T_I32 = 8
T_I64 = 10
T_STRING = 11
T_STRUCT = 12
T_MAP = 13
T_SET = 14
T_LIST = 15
T_UUID = 16

_COMPACT_TO_TYPE = {
    1: T_BOOL,
    2: T_BOOL,
    3: T_BYTE,
    4: T_I16,
    5: T_I32,
    6: T_I64,
    7: T_DOUBLE,
    8: T_STRING,
    9: T_LIST,
    10: T_SET,
    11: T_MAP,
    12: T_STRUCT,
    13: T_UUID,
}
_TYPE_TO_COMPACT = {
    T_BOOL: 1,
    T_BYTE: 3,
    T_I16: 4,
    T_I32: 5,
    T_I64: 6,
    T_DOUBLE: 7,
    T_STRING: 8,
    T_LIST: 9,
    T_SET: 10,
    T_MAP: 11,
    T_STRUCT: 12,
    T_UUID: 13,
}
_BINARY_FIXED = {T_BOOL: 1, T_BYTE: 1, T_I16: 2, T_I32: 4, T_I64: 8, T_DOUBLE: 8, T_UUID: 16}
_COMPACT_FIXED = {T_BOOL: 1, T_BYTE: 1, T_DOUBLE: 8, T_UUID: 16}
_VARINT_TYPES = frozenset((T_I16, T_I32, T_I64))
_VALID_TYPES = frozenset(_TYPE_TO_COMPACT)

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_FIELD = struct.Struct(">bh")
_BINARY_VERSION_1 = 0x80010000
_COMPACT_ID = 0x82

Buffer = Union[bytes, bytearray]


def _varint(buf: Buffer, pos: int, end: int) -> tuple[int, int] | None:
    """
    Read an unsigned LEB128 varint at C{pos}: C{(value, next)}, or C{None}
    if C{buf} ends inside it.
    """
    value = 0
    shift = 0
    while pos < end:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise ThriftCodecError("varint longer than 10 bytes")
    return None


def _unzigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _encodeVarint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


# Frames of the skipper's explicit stack (lists, mutated in place).
_RAW = 0  # [_RAW, bytes still to skip]
_STRUCT = 1  # [_STRUCT, last field id (compact deltas)]
_SEQ = 2  # [_SEQ, element type, elements left]
_MAP = 3  # [_MAP, key type, value type, keys and values left]
_VALUE = 4  # [_VALUE, type]: a value whose header has not been read yet


class _Skipper:
    """
    Walks over one Thrift value (by default a struct) in a buffer that may
    still be growing.  L{run} resumes where the previous call stopped.
    """

    def __init__(self, protocol: ThriftProtocol, maxSize: int) -> None:
        self._compact = protocol is ThriftProtocol.COMPACT
        self._maxSize = maxSize
        self._stack: list[list[int]] = []
        self.pos = 0

    def start(self, pos: int, type: int = T_STRUCT) -> None:
        self._stack = [[_VALUE, type]]
        self.pos = pos

    def run(self, buf: Buffer) -> bool:
        """
        Skip as far as C{buf} allows.  Return C{True} once the value has been
        skipped entirely (it ends at L{pos}), C{False} if more bytes are
        needed.
        """
        stack = self._stack
        end = len(buf)
        pos = self.pos
        compact = self._compact
        try:
            while stack:
                top = stack[-1]
                kind = top[0]
                if kind == _RAW:
                    if end - pos < top[1]:
                        top[1] -= end - pos
                        pos = end
                        return False
                    pos += top[1]
                    stack.pop()
                elif kind == _STRUCT:
                    if pos >= end:
                        return False
                    b = buf[pos]
                    if b == T_STOP:
                        pos += 1
                        stack.pop()
                    elif compact:
                        delta = b >> 4
                        if delta:
                            next = pos + 1
                            fieldId = top[1] + delta
                        else:
                            got = _varint(buf, pos + 1, end)
                            if got is None:
                                return False
                            fieldId, next = _unzigzag(got[0]), got[1]
                        ctype = b & 0x0F
                        if ctype not in _COMPACT_TO_TYPE:
                            raise ThriftCodecError(f"unknown compact field type {ctype}")
                        top[1] = fieldId
                        pos = next
                        if ctype > 2:  # booleans carry their value in the type
                            stack.append([_VALUE, _COMPACT_TO_TYPE[ctype]])
                    else:
                        if end - pos < 3:
                            return False
                        pos += 3
                        stack.append([_VALUE, b])
                elif kind in (_SEQ, _MAP):
                    left = top[-1]
                    if not left:
                        stack.pop()
                        continue
                    top[-1] = left - 1
                    etype = top[1] if kind == _SEQ or left % 2 == 0 else top[2]
                    stack.append([_VALUE, etype])
                else:
                    got2 = self._valueHeader(buf, pos, end, top[1], len(stack))
                    if got2 is None:
                        return False
                    frame, pos = got2
                    if frame is None:
                        stack.pop()
                    else:
                        stack[-1] = frame
            return True
        finally:
            self.pos = pos

    def _valueHeader(
        self, buf: Buffer, pos: int, end: int, type: int, depth: int
    ) -> tuple[list[int] | None, int] | None:
        """
        Read what is needed to know how to skip a value of C{type}: the
        frame that skips the rest (C{None} when nothing is left) and the
        position after the header; C{None} if C{buf} is too short.
        """
        compact = self._compact
        fixed = (_COMPACT_FIXED if compact else _BINARY_FIXED).get(type)
        if fixed is not None:
            return [_RAW, fixed], pos
        if type not in _VALID_TYPES:
            raise ThriftCodecError(f"unknown field type {type}")
        if depth > _MAX_DEPTH:
            raise ThriftCodecError(f"structs nested deeper than {_MAX_DEPTH}")
        if type == T_STRUCT:
            return [_STRUCT, 0], pos
        if compact and type in _VARINT_TYPES:
            got = _varint(buf, pos, end)
            return None if got is None else (None, got[1])
        if type == T_STRING:
            if compact:
                got = _varint(buf, pos, end)
                if got is None:
                    return None
                size, pos = got
            else:
                if end - pos < 4:
                    return None
                (size,) = _I32.unpack_from(buf, pos)
                pos += 4
            return [_RAW, self._checkSize(size)], pos
        if type == T_MAP:
            if compact:
                got = _varint(buf, pos, end)
                if got is None:
                    return None
                size, after = got
                if size == 0:
                    return None, after
                if after >= end:
                    return None
                kv = buf[after]
                keyType = self._elementType(kv >> 4)
                valueType = self._elementType(kv & 0x0F)
                pos = after + 1
            else:
                if end - pos < 6:
                    return None
                keyType, valueType = buf[pos], buf[pos + 1]
                (size,) = _I32.unpack_from(buf, pos + 2)
                pos += 6
            return [_MAP, keyType, valueType, 2 * self._checkSize(size)], pos
        # list or set
        if compact:
            if pos >= end:
                return None
            b = buf[pos]
            size = b >> 4
            pos += 1
            if size == 15:
                got = _varint(buf, pos, end)
                if got is None:
                    return None
                size, pos = got
            elementType = self._elementType(b & 0x0F)
        else:
            if end - pos < 5:
                return None
            elementType = buf[pos]
            (size,) = _I32.unpack_from(buf, pos + 1)
            pos += 5
        return [_SEQ, elementType, self._checkSize(size)], pos

    def _elementType(self, ctype: int) -> int:
        type = _COMPACT_TO_TYPE.get(ctype)
        if type is None:
            raise ThriftCodecError(f"unknown compact element type {ctype}")
        return type

    def _checkSize(self, size: int) -> int:
        if size < 0 or size > self._maxSize:
            raise ThriftCodecError(f"size {size} out of range")
        return size


def _parseHeader(
    buf: Buffer, pos: int, protocol: ThriftProtocol, maxSize: int
) -> tuple[str, MessageType, int, int] | None:
    """
    Read a message header at C{pos}: C{(name, type, seqid, body offset)}, or
    C{None} if C{buf} ends inside it.
    """
    end = len(buf)
    if protocol is ThriftProtocol.COMPACT:
        if end - pos < 2:
            return None
        if buf[pos] != _COMPACT_ID:
            raise ThriftCodecError(f"not a compact protocol message (first byte {buf[pos]:#04x})")
        versionAndType = buf[pos + 1]
        if versionAndType & 0x1F != 1:
            raise ThriftCodecError(f"unsupported compact protocol version {versionAndType & 0x1F}")
        rawType = versionAndType >> 5
        got = _varint(buf, pos + 2, end)
        if got is None:
            return None
        seqid, after = got
        if seqid > 0xFFFFFFFF:
            raise ThriftCodecError("sequence id out of range")
        if seqid >= 0x80000000:
            seqid -= 0x100000000
        got = _varint(buf, after, end)
        if got is None:
            return None
        size, nameStart = got
        if size > maxSize:
            raise ThriftCodecError(f"method name of {size} bytes")
        body = nameStart + size
        if body > end:
            return None
    else:
        if end - pos < 4:
            return None
        (first,) = _I32.unpack_from(buf, pos)
        if first < 0:
            if first & 0xFFFF0000 != _BINARY_VERSION_1:
                raise ThriftCodecError(f"bad binary protocol version {first & 0xFFFFFFFF:#010x}")
            rawType = first & 0xFF
            if end - pos < 8:
                return None
            (size,) = _I32.unpack_from(buf, pos + 4)
            if size < 0 or size > maxSize:
                raise ThriftCodecError(f"method name of {size} bytes")
            nameStart = pos + 8
            if end - nameStart < size + 4:
                return None
            (seqid,) = _I32.unpack_from(buf, nameStart + size)
            body = nameStart + size + 4
        else:
            size = first
            if size > maxSize:
                raise ThriftCodecError(f"method name of {size} bytes")
            nameStart = pos + 4
            if end - nameStart < size + 5:
                return None
            rawType = buf[nameStart + size]
            (seqid,) = _I32.unpack_from(buf, nameStart + size + 1)
            body = nameStart + size + 5
    if not 1 <= rawType <= 4:
        raise ThriftCodecError(f"unknown message type {rawType}")
    try:
        name = bytes(buf[nameStart : nameStart + size]).decode("utf-8")
    except UnicodeDecodeError:
        raise ThriftCodecError("method name is not UTF-8") from None
    return name, MessageType(rawType), seqid, body


class MessageDecoder:
    """
    Splits a byte stream into L{Message}s.

    Feed bytes with L{feed}, then call L{next} until it returns C{None}.
    Setting L{prefixed} (after a TTwitter upgrade) makes every following
    message expect a header struct in front of it; it may be changed between
    two calls to L{next}.
    """

    def __init__(
        self,
        protocol: ThriftProtocol,
        framed: bool,
        maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE,
        prefixed: bool = False,
    ) -> None:
        self.protocol = protocol
        self.framed = framed
        self.maxMessageSize = maxMessageSize
        self.prefixed = prefixed
        self._buf: bytes | bytearray = b""
        self._pos = 0  # start of the current (unfinished) message
        self._skipper = _Skipper(protocol, maxMessageSize)
        # buffered only: 0 = at a message start, 1 = in the prefix struct,
        # 2 = at the message header, 3 = in the message body
        self._state = 0
        self._messageStart = 0
        self._header: tuple[str, MessageType, int, int] | None = None

    @property
    def pending(self) -> int:
        """Bytes received of a message not yet complete."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        # Most reads hold whole messages: keep the bytes as they came (no
        # copy) when nothing is pending, and grow a bytearray otherwise.
        if self._pos == len(self._buf):
            self._buf = data
            self._pos = 0
        elif isinstance(self._buf, bytes):
            self._buf = bytearray(self._buf) + data  # offsets stay valid
        else:
            self._buf += data

    def next(self) -> Message | None:
        """
        The next complete message, or C{None} until more bytes are fed.

        @raise ThriftCodecError: for garbage, or a message larger than the
            limit.
        """
        message = self._nextFramed() if self.framed else self._nextBuffered()
        if message is None:
            if self.pending > self.maxMessageSize + 4:
                raise ThriftCodecError(
                    f"message larger than the limit of {self.maxMessageSize} bytes"
                )
            if self._pos and self._state == 0 and isinstance(self._buf, bytearray):
                del self._buf[: self._pos]
                self._pos = 0
        return message

    def _nextFramed(self) -> Message | None:
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 4:
            return None
        (size,) = _I32.unpack_from(buf, pos)
        if size < 0:
            raise ThriftCodecError(
                f"negative frame length {size:#x} (is the peer using the buffered transport?)"
            )
        if size > self.maxMessageSize:
            raise ThriftCodecError(f"frame of {size} bytes exceeds the limit")
        if len(buf) - pos - 4 < size:
            return None
        end = self._pos = pos + 4 + size
        whole = isinstance(buf, bytes) and pos == 0 and end == len(buf)
        frameBytes = bytes(buf[4:]) if whole else bytes(memoryview(buf)[pos + 4 : end])
        start = 0
        if self.prefixed:
            skipper = self._skipper
            skipper.start(0)
            if not skipper.run(frameBytes):
                raise ThriftCodecError("frame ends inside the TTwitter header")
            start = skipper.pos
        header = _parseHeader(frameBytes, start, self.protocol, self.maxMessageSize)
        if header is None:
            raise ThriftCodecError("frame ends inside the message header")
        name, type, seqid, _ = header
        if start:
            return Message(name, type, seqid, frameBytes[start:], frameBytes[:start])
        return Message(name, type, seqid, frameBytes, b"", bytes(buf) if whole else None)

    def _nextBuffered(self) -> Message | None:
        buf = self._buf
        skipper = self._skipper
        if self._state == 0:
            if self._pos == len(buf):
                return None
            if self.prefixed:
                skipper.start(self._pos)
                self._state = 1
            else:
                self._messageStart = self._pos
                self._state = 2
        if self._state == 1:
            if not skipper.run(buf):
                return None
            self._messageStart = skipper.pos
            self._state = 2
        if self._state == 2:
            header = _parseHeader(buf, self._messageStart, self.protocol, self.maxMessageSize)
            if header is None:
                return None
            self._header = header
            skipper.start(header[3])
            self._state = 3
        if not skipper.run(buf):
            return None
        assert self._header is not None
        name, type, seqid, _ = self._header
        start, split, end = self._pos, self._messageStart, skipper.pos
        self._pos = end
        self._state = 0
        if isinstance(buf, bytes) and start == split == 0 and end == len(buf):
            return Message(name, type, seqid, buf)
        view = memoryview(buf)
        return Message(name, type, seqid, bytes(view[split:end]), bytes(view[start:split]))


def frame(framed: bool, *parts: bytes) -> bytes:
    """Join C{parts} into what goes on the wire for one message."""
    body = b"".join(parts)
    return _I32.pack(len(body)) + body if framed else body


def forward(message: Message, framed: bool, prefix: bytes = b"") -> bytes:
    """
    What goes on the wire to send C{message} on (after C{prefix}): the frame
    as it was received when that fits, else a new one.
    """
    if framed and not prefix and message.framed is not None:
        return message.framed
    return frame(framed, prefix, message.payload)


def encodeMessage(
    protocol: ThriftProtocol, name: str, type: MessageType, seqid: int, body: bytes
) -> bytes:
    """
    A whole message: the header (strict binary, or compact) and C{body}, the
    encoded struct.
    """
    rawName = name.encode("utf-8")
    if protocol is ThriftProtocol.COMPACT:
        return b"".join(
            (
                bytes((_COMPACT_ID, (type << 5) | 1)),
                _encodeVarint(seqid & 0xFFFFFFFF),
                _encodeVarint(len(rawName)),
                rawName,
                body,
            )
        )
    return b"".join(
        (
            _U32.pack(_BINARY_VERSION_1 | type),
            _I32.pack(len(rawName)),
            rawName,
            _I32.pack(seqid),
            body,
        )
    )


def encodeApplicationException(
    protocol: ThriftProtocol,
    name: str,
    seqid: int,
    message: str,
    type: ApplicationExceptionType = ApplicationExceptionType.INTERNAL_ERROR,
) -> bytes:
    """An EXCEPTION message carrying a C{TApplicationException}."""
    body = StructWriter(protocol)
    body.binary(1, message.encode("utf-8"))
    body.i32(2, type)
    return encodeMessage(protocol, name, MessageType.EXCEPTION, seqid, body.finish())


class StructWriter:
    """
    Writes one struct field by field, in increasing field id order.
    """

    def __init__(self, protocol: ThriftProtocol) -> None:
        self._compact = protocol is ThriftProtocol.COMPACT
        self._parts: list[bytes] = []
        self._lastId = 0

    def _field(self, type: int, fieldId: int, ctype: int | None = None) -> None:
        if not self._compact:
            self._parts.append(_FIELD.pack(type, fieldId))
            return
        ctype = _TYPE_TO_COMPACT[type] if ctype is None else ctype
        delta = fieldId - self._lastId
        if 0 < delta <= 15:
            self._parts.append(bytes(((delta << 4) | ctype,)))
        else:
            self._parts.append(bytes((ctype,)) + _encodeVarint(_zigzag(fieldId) & 0xFFFF_FFFF))
        self._lastId = fieldId

    def bool(self, fieldId: int, value: bool) -> None:
        if self._compact:
            self._field(T_BOOL, fieldId, 1 if value else 2)
        else:
            self._field(T_BOOL, fieldId)
            self._parts.append(b"\x01" if value else b"\x00")

    def i32(self, fieldId: int, value: int) -> None:
        self._field(T_I32, fieldId)
        self._parts.append(
            _encodeVarint(_zigzag(value) & 0xFFFFFFFF) if self._compact else _I32.pack(value)
        )

    def i64(self, fieldId: int, value: int) -> None:
        self._field(T_I64, fieldId)
        self._parts.append(
            _encodeVarint(_zigzag(value) & 0xFFFFFFFFFFFFFFFF)
            if self._compact
            else _I64.pack(value)
        )

    def binary(self, fieldId: int, value: bytes) -> None:
        self._field(T_STRING, fieldId)
        self._parts.append(self._length(len(value)) + value)

    def struct(self, fieldId: int, encoded: bytes) -> None:
        """A nested struct, already encoded by another L{StructWriter}."""
        self._field(T_STRUCT, fieldId)
        self._parts.append(encoded)

    def structList(self, fieldId: int, encoded: Sequence[bytes]) -> None:
        """A C{list<struct>}, each element encoded by a L{StructWriter}."""
        self._field(T_LIST, fieldId)
        size = len(encoded)
        if not self._compact:
            self._parts.append(bytes((T_STRUCT,)) + _I32.pack(size))
        elif size <= 14:
            self._parts.append(bytes(((size << 4) | _TYPE_TO_COMPACT[T_STRUCT],)))
        else:
            self._parts.append(bytes((0xF0 | _TYPE_TO_COMPACT[T_STRUCT],)) + _encodeVarint(size))
        self._parts.extend(encoded)

    def _length(self, size: int) -> bytes:
        return _encodeVarint(size) if self._compact else _I32.pack(size)

    def finish(self) -> bytes:
        return b"".join(self._parts) + b"\x00"


ThriftValue = Union[
    int,
    float,
    bool,
    bytes,
    "dict[int, ThriftValue]",
    "list[ThriftValue]",
    "list[tuple[ThriftValue, ThriftValue]]",
]
"""
A decoded value: integers, floats, booleans, C{bytes} (strings, binaries
and uuids), structs as C{{field id: value}}, lists and sets as lists, maps
as lists of pairs.
"""


class _Reader:
    """Decodes values from a complete buffer (small structs only)."""

    def __init__(self, protocol: ThriftProtocol, buf: bytes, pos: int) -> None:
        self._compact = protocol is ThriftProtocol.COMPACT
        self._buf = buf
        self.pos = pos

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self._buf):
            raise ThriftCodecError("struct truncated")
        chunk = self._buf[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def _varint(self) -> int:
        got = _varint(self._buf, self.pos, len(self._buf))
        if got is None:
            raise ThriftCodecError("struct truncated")
        value, self.pos = got
        return value

    def _size(self) -> int:
        size = self._varint() if self._compact else _I32.unpack(self._take(4))[0]
        if size < 0 or size > len(self._buf):
            raise ThriftCodecError(f"size {size} out of range")
        return size

    def struct(self, depth: int = 0) -> dict[int, ThriftValue]:
        if depth > _MAX_DEPTH:
            raise ThriftCodecError(f"structs nested deeper than {_MAX_DEPTH}")
        fields: dict[int, ThriftValue] = {}
        lastId = 0
        while True:
            b = self._take(1)[0]
            if b == T_STOP:
                return fields
            if self._compact:
                fieldId = lastId + (b >> 4) if b >> 4 else _unzigzag(self._varint())
                lastId = fieldId
                ctype = b & 0x0F
                if ctype in (1, 2):
                    fields[fieldId] = ctype == 1
                    continue
                if ctype not in _COMPACT_TO_TYPE:
                    raise ThriftCodecError(f"unknown compact field type {ctype}")
                type = _COMPACT_TO_TYPE[ctype]
            else:
                type = b
                (fieldId,) = _I16.unpack(self._take(2))
            fields[fieldId] = self.value(type, depth)

    def _elementType(self, ctype: int) -> int:
        if not self._compact:
            return ctype
        if ctype not in _COMPACT_TO_TYPE:
            raise ThriftCodecError(f"unknown compact element type {ctype}")
        return _COMPACT_TO_TYPE[ctype]

    def value(self, type: int, depth: int) -> ThriftValue:
        compact = self._compact
        if type == T_BOOL:
            return self._take(1)[0] == 1
        if type == T_BYTE:
            return int.from_bytes(self._take(1), "big", signed=True)
        if type in _VARINT_TYPES:
            if compact:
                return _unzigzag(self._varint())
            size = {T_I16: 2, T_I32: 4, T_I64: 8}[type]
            return int.from_bytes(self._take(size), "big", signed=True)
        if type == T_DOUBLE:
            return struct.unpack("<d" if compact else ">d", self._take(8))[0]  # type: ignore[no-any-return]
        if type == T_STRING:
            return self._take(self._size())
        if type == T_UUID:
            return self._take(16)
        if type == T_STRUCT:
            return self.struct(depth + 1)
        if type in (T_LIST, T_SET):
            if compact:
                b = self._take(1)[0]
                size = b >> 4 if b >> 4 != 15 else self._size()
                elementType = self._elementType(b & 0x0F)
            else:
                elementType = self._take(1)[0]
                size = self._size()
            return [self.value(elementType, depth + 1) for _ in range(size)]
        if type == T_MAP:
            if compact:
                size = self._size()
                kv = self._take(1)[0] if size else 0
                keyType, valueType = self._elementType(kv >> 4), self._elementType(kv & 0x0F)
            else:
                keyType, valueType = self._take(1)[0], self._take(1)[0]
                size = self._size()
            return [
                (self.value(keyType, depth + 1), self.value(valueType, depth + 1))
                for _ in range(size)
            ]
        raise ThriftCodecError(f"unknown field type {type}")


def readStruct(
    protocol: ThriftProtocol, buf: bytes, pos: int = 0
) -> tuple[dict[int, ThriftValue], int]:
    """
    Decode the struct at C{pos} of a complete buffer: its fields and the
    offset just after it.

    @raise ThriftCodecError: if the struct is malformed or truncated.
    """
    reader = _Reader(protocol, buf, pos)
    fields = reader.struct()
    return fields, reader.pos


def readApplicationException(
    protocol: ThriftProtocol, payload: bytes
) -> tuple[ApplicationExceptionType | int, str]:
    """
    The type and message of the C{TApplicationException} in an EXCEPTION
    message.
    """
    header = _parseHeader(payload, 0, protocol, len(payload))
    if header is None:
        raise ThriftCodecError("message header truncated")
    fields, _ = readStruct(protocol, payload, header[3])
    rawType = fields.get(2, 0)
    text = fields.get(1, b"")
    code = rawType if isinstance(rawType, int) else 0
    kind: ApplicationExceptionType | int = (
        ApplicationExceptionType(code)
        if code in ApplicationExceptionType._value2member_map_
        else code
    )
    return kind, text.decode("utf-8", "replace") if isinstance(text, bytes) else ""
