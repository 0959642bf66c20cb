# -*- test-case-name: tests.test_http_options,tests.test_thrift_options -*-
"""
The per-connection C{socketOptions} of servers and clients, for every
protocol: C{noDelay} and C{keepAlive} set on the socket by
L{applySocketOptions}, and the C{readTimeoutMs} and C{writeTimeoutMs}
watchdog (L{Liveness}).  The listen-time options (C{reuseAddr},
C{reusePort}, C{backlog}) are the router's business
(L{linkrouter.routing.service}).

A protocol's connection calls L{applySocketOptions} and L{Liveness.start}
when it is made, L{Liveness.read} on every read and L{Liveness.stop} when
it is lost; it tells the watchdog when a message is being read (or a reply
awaited) with its C{expecting} callable.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITCPTransport

from linkrouter.config import SocketOptions

DEFAULTS = SocketOptions()
"""The options of a server or client that configures none."""


def applySocketOptions(transport: object, options: SocketOptions) -> None:
    """Set C{noDelay} and (when configured) C{keepAlive} on a TCP connection."""
    if ITCPTransport.providedBy(transport):
        transport.setTcpNoDelay(options.noDelay)
        if options.keepAlive is not None:
            transport.setTcpKeepAlive(options.keepAlive)


def _buffered(transport: object) -> object:
    """The object holding C{transport}'s write buffer (under any TLS layer)."""
    while not hasattr(transport, "dataBuffer") and hasattr(transport, "transport"):
        transport = transport.transport
    return transport


def _stallMark(buffered: object) -> tuple[object, int] | None:
    """What changes whenever bytes leave C{buffered}; C{None} when nothing waits."""
    data = getattr(buffered, "dataBuffer", b"")
    offset: int = getattr(buffered, "offset", 0)
    if len(data) - offset + getattr(buffered, "_tempDataLen", 0) <= 0:
        return None
    return (data, offset)


class Liveness:
    """
    C{readTimeoutMs}: the connection is given up once no byte has been read
    for that long while C{expecting()} says a message is in progress (and
    its reading is not paused by flow control).  C{writeTimeoutMs}: given up
    once bytes have been waiting to be sent and none has left for that
    long.  C{expired(message)} is called once, then the watchdog stops.

    The connection calls L{read} on every read: one clock look-up.
    """

    __slots__ = (
        "_buffered",
        "_call",
        "_mark",
        "_stalledSince",
        "clock",
        "expecting",
        "expired",
        "lastRead",
        "readTimeout",
        "writeTimeout",
    )

    def __init__(
        self,
        clock: IReactorTime,
        readTimeoutMs: int | None,
        writeTimeoutMs: int | None,
        expecting: Callable[[], bool],
        expired: Callable[[str], None],
    ) -> None:
        self.clock = clock
        self.readTimeout = readTimeoutMs / 1000 if readTimeoutMs else None
        self.writeTimeout = writeTimeoutMs / 1000 if writeTimeoutMs else None
        self.expecting = expecting
        self.expired = expired
        self.lastRead = clock.seconds()
        self._buffered: object = None
        self._mark: tuple[object, int] | None = None
        self._stalledSince = 0.0
        self._call: IDelayedCall | None = None

    @classmethod
    def forOptions(
        cls,
        clock: IReactorTime | None,
        options: SocketOptions,
        expecting: Callable[[], bool],
        expired: Callable[[str], None],
    ) -> Liveness | None:
        """A watchdog when C{options} set a timeout (and a clock is given), else C{None}."""
        if clock is None or not (options.readTimeoutMs or options.writeTimeoutMs):
            return None
        return cls(clock, options.readTimeoutMs, options.writeTimeoutMs, expecting, expired)

    def start(self, transport: object) -> None:
        """Begin watching C{transport}, the connection just made."""
        self._buffered = _buffered(transport)
        self.lastRead = self.clock.seconds()
        self._schedule(min(t for t in (self.readTimeout, self.writeTimeout) if t))

    def read(self) -> None:
        """
        Bytes were read, or a client has just sent a request and now awaits
        its reply: the read clock starts again.
        """
        self.lastRead = self.clock.seconds()

    def stop(self) -> None:
        """Stop watching (the connection is lost); C{expired} will not be called."""
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()
        self._buffered = self._mark = None

    def _schedule(self, delay: float) -> None:
        self._call = self.clock.callLater(max(delay, 0.001), self._check)

    def _check(self) -> None:
        self._call = None
        now = self.clock.seconds()
        delays = []
        if self.readTimeout is not None:
            if self.expecting():
                left = self.lastRead + self.readTimeout - now
                if left <= 0:
                    self.stop()
                    self.expired(f"no bytes read for readTimeoutMs ({self.readTimeout * 1000:g})")
                    return
                delays.append(left)
            else:
                self.lastRead = now  # the clock runs only while a message is expected
                delays.append(self.readTimeout)
        if self.writeTimeout is not None:
            mark = _stallMark(self._buffered)
            if mark is None:
                self._mark = None
                delays.append(self.writeTimeout)
            elif self._mark is None or mark[0] is not self._mark[0] or mark[1] != self._mark[1]:
                self._mark = mark
                self._stalledSince = now
                delays.append(self.writeTimeout)
            else:
                left = self._stalledSince + self.writeTimeout - now
                if left <= 0:
                    self.stop()
                    self.expired(
                        f"writes stalled for writeTimeoutMs ({self.writeTimeout * 1000:g})"
                    )
                    return
                delays.append(left)
        self._schedule(min(delays))
