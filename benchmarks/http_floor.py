"""
Reference data paths for benchmarks/http.py --floor: what Twisted and
httptools cost on their own, below any router, so that a ratio can be read
against what this runtime allows.

    python -m benchmarks.http_floor relay|minimal LISTEN_PORT UPSTREAM_PORT

- relay: bytes copied between each client connection and its own upstream
  connection (no HTTP at all): the reactor's floor.
- minimal: an HTTP/1.1 keep-alive proxy on httptools with none of the
  engine's duties (no streaming, flow control, pipelining, limits or error
  handling; Content-Length responses only): the parsing floor.

Both run on the router's reactor and write through the engine's own helper
(linkrouter._transport).

Neither is fit to route traffic; they exist to be measured.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import httptools
from twisted.internet.protocol import ClientCreator, Protocol, ServerFactory

from linkrouter._transport import write

_HOP = frozenset(
    {b"connection", b"keep-alive", b"te", b"upgrade", b"proxy-connection", b"content-length"}
)


class _RelayUp(Protocol):
    def __init__(self, down: _RelayDown) -> None:
        self.down = down

    def connectionMade(self) -> None:
        self.down.up = self
        self.down.transport.resumeProducing()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        write(self.down.transport, data)

    def connectionLost(self, reason: object = None) -> None:
        self.down.transport.loseConnection()  # type: ignore[union-attr]


class _RelayDown(Protocol):
    up: _RelayUp | None = None
    upstream = 0

    def connectionMade(self) -> None:
        from twisted.internet import reactor

        self.transport.pauseProducing()  # type: ignore[union-attr]
        creator = ClientCreator(reactor, lambda: _RelayUp(self))
        creator.connectTCP("127.0.0.1", self.upstream)

    def dataReceived(self, data: bytes) -> None:
        assert self.up is not None
        write(self.up.transport, data)

    def connectionLost(self, reason: object = None) -> None:
        if self.up is not None:
            self.up.transport.loseConnection()  # type: ignore[union-attr]


class _MinimalUp(Protocol):
    def __init__(self, idle: list[_MinimalUp]) -> None:
        self.idle = idle
        self.parser = httptools.HttpResponseParser(self)
        self.request = b""
        self.reply: Callable[[bytes], None] | None = None
        self.head: list[bytes] = []
        self.body: list[bytes] = []

    def connectionMade(self) -> None:
        self.send(self.request, self.reply)  # type: ignore[arg-type]

    def send(self, request: bytes, reply: Callable[[bytes], None]) -> None:
        self.reply = reply
        if self.transport is not None:
            write(self.transport, request)
        else:
            self.request = request

    def dataReceived(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.head = []
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in _HOP:
            self.head.append(b"%s: %s\r\n" % (name, value))

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        status = self.parser.get_status_code()
        head = b"".join(self.head)
        reply, self.reply = self.reply, None
        self.idle.append(self)
        assert reply is not None
        reply(b"HTTP/1.1 %d OK\r\n%sContent-Length: %d\r\n\r\n%s" % (status, head, len(body), body))


class _MinimalDown(Protocol):
    upstream = 0
    idle: list[_MinimalUp] = []

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.head: list[bytes] = []
        self.close = False

    def dataReceived(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.url = b""
        self.head = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in _HOP:
            self.head.append(b"%s: %s\r\n" % (name, value))
        elif name.lower() == b"connection" and value.lower() == b"close":
            self.close = True

    def on_message_complete(self) -> None:
        request = b"%s %s HTTP/1.1\r\n%sVia: 1.1 linkerd\r\n\r\n" % (
            self.parser.get_method(),
            self.url,
            b"".join(self.head),
        )
        if self.idle:
            self.idle.pop().send(request, self.reply)
            return
        from twisted.internet import reactor

        up = _MinimalUp(self.idle)
        up.send(request, self.reply)
        ClientCreator(reactor, lambda: up).connectTCP("127.0.0.1", self.upstream)

    def reply(self, data: bytes) -> None:
        write(self.transport, data)
        if self.close:
            self.transport.loseConnection()  # type: ignore[union-attr]


def main(argv: list[str]) -> None:
    from linkrouter import _reactor

    _reactor.install()  # the router's own reactor, so that the rows compare
    from twisted.internet import reactor

    kind, listen, upstream = argv[0], int(argv[1]), int(argv[2])
    down: type[_RelayDown | _MinimalDown] = _MinimalDown if kind == "minimal" else _RelayDown
    down.upstream = upstream
    factory = ServerFactory.forProtocol(down)
    reactor.listenTCP(listen, factory, interface="127.0.0.1")  # type: ignore[attr-defined,arg-type]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1:])
