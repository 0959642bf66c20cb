"""
A seeded fault run of the whole Thrift router on loopback: clients that send
garbage, half a frame, impossible frame lengths, oneway calls and pipelined
calls they abandon, and a backend that closes, resets, truncates, sends
garbage, a wrong seqid, two replies for one call, an oversized frame, an
exception or a reply after the router's timeout.  Bounded in count and time;
every reply a client gets is its own call's, and afterwards nothing is in
flight, no connection is left open and nothing was logged as an error
(trial fails a test on any logged failure).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from protocols.thrift.codec import (
    Message,
    MessageDecoder,
    MessageType,
    ThriftProtocol,
    encodeApplicationException,
    encodeMessage,
    frame,
)
from tests._faults import assertSettled, connectAll, startBehind, watchErrors
from tests._linker import routerPort

reactor: Any = _reactor
BINARY = ThriftProtocol.BINARY

CONFIG = """
admin:
  port: 0
routers:
- protocol: thrift
  label: faults
  dtab: /svc => /$/inet/127.0.0.1/{port};
  servers:
  - port: 0
    thriftMaxMessageBytes: 65536
  client:
    thriftMaxMessageBytes: 65536
    hostConnectionPool:
      maxSize: 8
      maxWaiters: 1000
  service:
    totalTimeoutMs: 200
"""

METHODS = [
    "ok",
    "close",
    "reset",
    "truncated",
    "garbage",
    "seqid",
    "twice",
    "huge",
    "exception",
    "late",
]

ARGS = struct.Struct(">bhqb")
"""The arguments every call carries: field 1, an i64 token unique to the call."""


def args(token: int) -> bytes:
    return ARGS.pack(10, 1, token, 0)


def reply(m: Message, seqid: int | None = None) -> bytes:
    """A framed reply to C{m} that echoes its arguments."""
    body = m.payload[-ARGS.size :]
    seqid = m.seqid if seqid is None else seqid
    return frame(True, encodeMessage(BINARY, m.name, MessageType.REPLY, seqid, body))


class Misbehaving(Protocol):
    """A framed binary backend that answers each call as its method says."""

    def __init__(self) -> None:
        self.decoder = MessageDecoder(BINARY, True)
        self.later: list[IDelayedCall] = []

    def dataReceived(self, data: bytes) -> None:
        self.decoder.feed(data)
        while (m := self.decoder.next()) is not None:
            if m.type is MessageType.CALL:
                self.answer(m)

    def answer(self, m: Message) -> None:
        transport: Any = self.transport
        if m.name == "close":
            transport.loseConnection()
        elif m.name == "reset":
            transport.abortConnection()
        elif m.name == "truncated":
            transport.write(reply(m)[:-5])
            transport.loseConnection()
        elif m.name == "garbage":
            transport.write(b"\x00\x00\x00\x08garbage!" + b"\xff" * 20)
        elif m.name == "seqid":
            transport.write(reply(m, m.seqid + 1000))
        elif m.name == "twice":
            transport.write(reply(m) * 2)
        elif m.name == "huge":
            transport.write(struct.pack(">i", 0x7FFF0000) + reply(m))
        elif m.name == "exception":
            transport.write(
                frame(True, encodeApplicationException(BINARY, m.name, m.seqid, "no luck"))
            )
        elif m.name == "late":
            self.later.append(reactor.callLater(0.4, transport.write, reply(m)))
        else:
            transport.write(reply(m))

    def connectionLost(self, reason: Failure | None = None) -> None:
        for call in self.later:
            if call.active():
                call.cancel()


class Caller(Protocol):
    """
    Sends C{payload}, in which C{calls} are the two-way calls (name, seqid,
    token), then closes: at once if C{closeAfter} is 0, abruptly after
    C{closeAfter} seconds, else once every call is answered; it gives up
    after 1 s.
    """

    def __init__(
        self, payload: bytes, calls: list[tuple[str, int, int]], closeAfter: float | None
    ) -> None:
        self.payload = payload
        self.calls = calls
        self.closeAfter = closeAfter
        self.decoder = MessageDecoder(BINARY, True)
        self.replies: list[Message] = []
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.write(self.payload)
        if self.closeAfter == 0:
            transport.loseConnection()
        delay = 1.0 if not self.closeAfter else self.closeAfter
        self.timer = reactor.callLater(delay, transport.abortConnection)

    def dataReceived(self, data: bytes) -> None:
        self.decoder.feed(data)
        while (m := self.decoder.next()) is not None:
            self.replies.append(m)
        if len(self.replies) >= len(self.calls):
            self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self.timer.active():
            self.timer.cancel()
        self.lost.callback(None)

    def mistakes(self) -> list[str]:
        """Replies that are not, in order, those of this caller's calls."""
        wrong = []
        for (name, seqid, token), m in zip(self.calls, self.replies, strict=False):
            if (m.name, m.seqid) != (name, seqid):
                wrong.append(f"{name}#{seqid} answered by {m.name}#{m.seqid}")
            elif m.type is MessageType.REPLY and not m.payload.endswith(args(token)):
                wrong.append(f"{name}#{seqid} answered with another call's reply")
        if len(self.replies) > len(self.calls):
            wrong.append(f"{len(self.replies)} replies to {len(self.calls)} calls")
        return wrong


def caller(rng: random.Random, tokens: Iterator[int]) -> Caller:
    """One client: what it sends, which of it are two-way calls, and how it closes."""

    def call(mtype: MessageType = MessageType.CALL) -> tuple[bytes, tuple[str, int, int]]:
        name, seqid, token = rng.choice(METHODS), rng.randrange(-5, 5), next(tokens)
        return (
            frame(True, encodeMessage(BINARY, name, mtype, seqid, args(token))),
            (name, seqid, token),
        )

    kind = rng.randrange(9)
    if kind == 0:
        return Caller(rng.randbytes(rng.randint(1, 200)), [], None)
    if kind == 1:
        data, _ = call()
        return Caller(data[: rng.randint(1, len(data) - 1)], [], 0)
    if kind == 2:
        length = rng.choice([-1, -(2**31), 65537, 2**31 - 1])
        return Caller(struct.pack(">i", length) + rng.randbytes(10), [], None)
    if kind == 3:
        oneway, _ = call(MessageType.ONEWAY)
        data, meta = call()
        return Caller(oneway + data, [meta], None)
    if kind == 4:
        sent = [call() for _ in range(rng.randint(2, 5))]
        data = b"".join(d for d, _ in sent)
        return Caller(data, [m for _, m in sent], rng.uniform(0.001, 0.3))
    if kind == 5:
        data, meta = call()
        return Caller(data, [meta], 0)
    sent = [call() for _ in range(rng.randint(1, 3))]
    return Caller(b"".join(d for d, _ in sent), [m for _, m in sent], None)


class FaultTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_faultsLeaveNothingBehind(self) -> Any:
        errors = watchErrors(self)
        linker, connections = startBehind(self, Misbehaving, CONFIG)

        rng = random.Random(20261127)
        tokens = iter(range(1, 1_000_000))
        callers: list[Caller] = []

        def make() -> Caller:
            callers.append(caller(rng, tokens))
            return callers[-1]

        yield connectAll(routerPort(linker), make, 200)
        yield assertSettled(self, connections, linker)
        self.assertEqual([m for c in callers for m in c.mistakes()], [])
        self.assertIn(MessageType.REPLY, {m.type for c in callers for m in c.replies})
        self.assertEqual(errors, [])
