# -*- test-case-name: tests.test_thrift_codec -*-
"""
Finagle's TTwitter upgrade of plain Thrift.

A client sends a call named L{UPGRADE_METHOD} (seqid 0, empty arguments);
a server that answers with anything but an EXCEPTION has upgraded the
connection: from then on each request is a L{RequestHeader} struct followed
by the message, and each reply a (here always empty) ResponseHeader struct
followed by the message.  Both structs use the connection's protocol.
"""

from __future__ import annotations

import random

import attrs

from linkrouter.naming import Dentry, Dtab, Path

from .codec import (
    MessageType,
    StructWriter,
    ThriftCodecError,
    ThriftProtocol,
    ThriftValue,
    encodeMessage,
    readStruct,
)

UPGRADE_METHOD = "__can__finagle__trace__v3__"

EMPTY_STRUCT = b"\x00"
"""An empty struct (just STOP) in either protocol: the ResponseHeader we send."""

TRACE_CONTEXT_KEY = b"com.twitter.finagle.tracing.TraceContext"


def upgradeCall(protocol: ThriftProtocol) -> bytes:
    """The upgrade probe: a CALL with seqid 0 and an empty ConnectionOptions."""
    return encodeMessage(protocol, UPGRADE_METHOD, MessageType.CALL, 0, EMPTY_STRUCT)


def upgradeReply(protocol: ThriftProtocol, seqid: int) -> bytes:
    """A server's acceptance: a REPLY with an empty UpgradeReply."""
    return encodeMessage(protocol, UPGRADE_METHOD, MessageType.REPLY, seqid, EMPTY_STRUCT)


def _newId() -> int:
    return random.getrandbits(64) - (1 << 63)


def _text(value: ThriftValue | None) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else None


def _integer(value: ThriftValue | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _structs(value: ThriftValue | None) -> list[dict[int, ThriftValue]]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]


@attrs.frozen
class RequestHeader:
    """
    The TTwitter request header (field ids in parentheses): trace ids
    (1, 2, 3, 11), sampling (5), client id (6), flags (7), broadcast contexts
    (8), the destination path (9) and the per-request dtab (10).
    """

    traceId: int = 0
    spanId: int = 0
    parentSpanId: int | None = None
    sampled: bool | None = None
    clientId: str | None = None
    flags: int = 0
    contexts: tuple[tuple[bytes, bytes], ...] = ()
    dest: str | None = None
    delegations: tuple[tuple[str, str], ...] = ()
    traceIdHigh: int | None = None

    def encode(self, protocol: ThriftProtocol) -> bytes:
        w = StructWriter(protocol)
        w.i64(1, self.traceId)
        w.i64(2, self.spanId)
        if self.parentSpanId is not None:
            w.i64(3, self.parentSpanId)
        if self.sampled is not None:
            w.bool(5, self.sampled)
        if self.clientId is not None:
            client = StructWriter(protocol)
            client.binary(1, self.clientId.encode("utf-8"))
            w.struct(6, client.finish())
        w.i64(7, self.flags)
        contexts = []
        for key, value in self.contexts:
            c = StructWriter(protocol)
            c.binary(1, key)
            c.binary(2, value)
            contexts.append(c.finish())
        w.structList(8, contexts)
        if self.dest is not None:
            w.binary(9, self.dest.encode("utf-8"))
        if self.delegations:
            delegations = []
            for src, dst in self.delegations:
                d = StructWriter(protocol)
                d.binary(1, src.encode("utf-8"))
                d.binary(2, dst.encode("utf-8"))
                delegations.append(d.finish())
            w.structList(10, delegations)
        if self.traceIdHigh is not None:
            w.i64(11, self.traceIdHigh)
        return w.finish()

    @classmethod
    def decode(cls, protocol: ThriftProtocol, data: bytes) -> RequestHeader:
        """
        @raise ThriftCodecError: if C{data} is not exactly one struct.
        """
        fields, end = readStruct(protocol, data)
        if end != len(data):
            raise ThriftCodecError("bytes after the TTwitter request header")
        client = fields.get(6)
        sampled = fields.get(5)
        return cls(
            traceId=_integer(fields.get(1)) or 0,
            spanId=_integer(fields.get(2)) or 0,
            parentSpanId=_integer(fields.get(3)),
            sampled=sampled if isinstance(sampled, bool) else None,
            clientId=_text(client.get(1)) if isinstance(client, dict) else None,
            flags=_integer(fields.get(7)) or 0,
            contexts=tuple(
                (key, value)
                for c in _structs(fields.get(8))
                if isinstance(key := c.get(1), bytes) and isinstance(value := c.get(2), bytes)
            ),
            dest=_text(fields.get(9)),
            delegations=tuple(
                (src, dst)
                for d in _structs(fields.get(10))
                if (src := _text(d.get(1))) is not None and (dst := _text(d.get(2))) is not None
            ),
            traceIdHigh=_integer(fields.get(11)),
        )

    def destPath(self) -> Path:
        """
        The C{dest} field as a path (empty when absent or C{/}).

        @raise ParseError: if it is not a path.
        """
        if self.dest is None or self.dest.strip() in ("", "/"):
            return Path()
        return Path.read(self.dest)

    def localDtab(self) -> Dtab:
        """
        The delegations as a dtab.

        @raise ParseError: if one of them is not a dentry.
        """
        return Dtab([Dentry.read(f"{src}=>{dst}") for src, dst in self.delegations])

    def child(self) -> RequestHeader:
        """
        The header to send downstream for this request: same trace, a new
        span whose parent is this one, the same dest and delegations.
        """
        return attrs.evolve(
            self,
            spanId=_newId(),
            parentSpanId=self.spanId,
            dest=self.dest or "/",
            contexts=tuple(c for c in self.contexts if c[0] != TRACE_CONTEXT_KEY),
        )

    @classmethod
    def fresh(cls) -> RequestHeader:
        """The header for a request that arrived without one."""
        traceId = _newId()
        return cls(traceId=traceId, spanId=traceId, dest="/")


__all__ = [
    "EMPTY_STRUCT",
    "UPGRADE_METHOD",
    "RequestHeader",
    "upgradeCall",
    "upgradeReply",
]
