"""
A seeded fault run of the whole HTTP router on loopback: clients that send
garbage, half a request, bad dtabs, pipelined requests they abandon, and a
backend that closes, resets, truncates, sends garbage, bad chunks, two
answers for one request or a 101 nobody asked for.  Bounded in count and
time; afterwards nothing is in flight, no connection is left open, and
nothing was logged as an error (trial fails a test on any logged failure).
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests._faults import assertSettled, connectAll, startBehind, watchErrors
from tests._linker import routerPort

reactor: Any = _reactor

CONFIG = """
admin:
  port: 0
routers:
- protocol: http
  label: faults
  dtab: /svc/* => /$/inet/127.0.0.1/{port};
  servers:
  - port: 0
  service:
    totalTimeoutMs: 1000
"""

ANSWERS: dict[bytes, list[bytes]] = {
    b"/ok": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
    b"/truncated": [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"],
    b"/garbage": [b"NOT HTTP AT ALL\r\n\r\n"],
    b"/chunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"],
    b"/badchunk": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n"],
    b"/twice": [b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na" * 2],
    b"/switch": [b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\nx"],
    b"/500": [b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nno"],
    b"/conflict": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"],
}
PATHS = sorted([*ANSWERS, b"/close", b"/reset"])


class Misbehaving(Protocol):
    """Answers each request head (bodies are ignored) as its path says."""

    def __init__(self) -> None:
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            path = head.split(b" ")[1] if head.count(b" ") >= 2 else b"/ok"
            assert self.transport is not None
            if path == b"/close":
                self.transport.loseConnection()
            elif path == b"/reset":
                self.transport.abortConnection()  # type: ignore[attr-defined]
            else:
                for part in ANSWERS.get(path, ANSWERS[b"/ok"]):
                    self.transport.write(part)
                if path == b"/truncated":
                    self.transport.loseConnection()


class Client(Protocol):
    """Sends C{payload}, optionally closes at once, and gives up after 1 s."""

    def __init__(self, payload: bytes, closeNow: bool) -> None:
        self.payload = payload
        self.closeNow = closeNow
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.payload)
        if self.closeNow:
            self.transport.loseConnection()
        else:
            self.timer = reactor.callLater(1, self.transport.abortConnection)  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.closeNow and self.timer.active():
            self.timer.cancel()
        self.lost.callback(None)


def payloads(rng: random.Random) -> tuple[bytes, bool]:
    """One client's bytes, and whether it closes right after sending them."""
    path = rng.choice(PATHS)
    get = b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randbytes(rng.randint(1, 200)), False
    if kind == 1:
        return get[: rng.randint(1, len(get) - 1)], True
    if kind == 2:
        head = b"POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc" % path
        return head, rng.random() < 0.5
    if kind == 3:
        chunks = b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        return b"POST %s HTTP/1.1\r\nHost: a\r\n%s" % (path, chunks), False
    if kind == 4:
        return get * 4, rng.random() < 0.5
    if kind == 5:
        return (
            b"GET %s HTTP/1.1\r\nHost: a\r\nl5d-dtab: /svc/a=>/$/inet/127.0.0.1/1\r\n\r\n" % path,
            False,
        )
    if kind == 6:
        return b"GET %s HTTP/1.1\r\nHost: a\r\nl5d-dtab: ((((\r\n\r\n" % path, False
    if kind == 7:
        return get, True
    return get, False


class FaultTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_faultsLeaveNothingBehind(self) -> Any:
        errors = watchErrors(self)
        linker, connections = startBehind(self, Misbehaving, CONFIG)

        rng = random.Random(20261127)
        yield connectAll(routerPort(linker), lambda: Client(*payloads(rng)), 240)
        yield assertSettled(self, connections, linker)
        self.assertEqual(errors, [])
