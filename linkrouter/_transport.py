# -*- test-case-name: tests.test_transport -*-
"""
Writing to TCP transports on the data path, shared by every protocol.

A router answers many connections in one reactor turn.  Sending each
message as soon as it is written would wake the peer behind it once per
message; on loopback, where the peers run on the other cores, those wake-ups
cost more than the sends themselves.  So L{write} holds small writes to a
TCP connection in the transport's own buffer, and one L{flush} at the end
of the turn sends each connection's bytes with one C{send}.  The peers then
wake once for a batch of messages, and no writer is registered with the
reactor unless a socket's buffer is full.

The router's reactor (L{linkrouter._reactor}) calls L{flush} itself right
after dispatching a turn's events; a reactor that does not (its class has
no true C{flushesHeldWrites}) gets a C{callLater(0)}, which it runs right
after the events it has just polled.  Both send before the reactor waits again; the
reactor's own call saves a timed call per turn, which at moderate load
showed as 40 to 90 microseconds more median latency.

The bytes are in the transport's buffer from the moment they are written,
so everything Twisted does with a buffer still holds: C{loseConnection}
sends them before closing, later C{transport.write} calls queue behind
them, and C{abortConnection} drops them.
"""

from __future__ import annotations

from twisted.internet import tcp

_TCP = (tcp.Server, tcp.Client)

_held: list[tcp.Connection] = []
"""Connections with bytes held for the end of this reactor turn."""


def write(transport: object, data: bytes) -> None:
    """
    C{transport.write(data)}, but on a TCP connection with nothing else
    queued, held until the end of the reactor turn and then sent in one
    C{send} with whatever else the turn wrote to it (see the module
    docstring).  A write that would take the connection's buffer past its
    C{bufferSize} goes through C{transport.write}, so a registered producer
    is paused exactly as Twisted would pause it.  A connection that is gone
    drops the bytes, as Twisted's own C{write} does.
    """
    t = transport
    if (
        type(t) in _TCP
        and not (
            t.disconnected  # type: ignore[attr-defined]
            or t.disconnecting  # type: ignore[attr-defined]
            or t.dataBuffer  # type: ignore[attr-defined]
            or t._writeDisconnecting  # type: ignore[attr-defined]
        )
        and t._tempDataLen + len(data) <= t.bufferSize  # type: ignore[attr-defined]
    ):
        if not t._tempDataBuffer:  # type: ignore[attr-defined]
            if not _held and not getattr(t.reactor, "flushesHeldWrites", False):  # type: ignore[attr-defined]
                t.reactor.callLater(0, flush)  # type: ignore[attr-defined]
            _held.append(t)  # type: ignore[arg-type]
        t._tempDataBuffer.append(data)  # type: ignore[attr-defined]
        t._tempDataLen += len(data)  # type: ignore[attr-defined]
        return
    t.write(data)  # type: ignore[attr-defined]


def flush() -> None:
    """
    Send what this turn held, one C{send} per connection.  What a socket
    does not take is handed to the transport, which registers with the
    reactor to send the rest.  A connection that is closing (or that
    C{transport.write} has since registered) is left to the reactor, which
    sends its buffer as usual; an aborted one sends nothing.
    """
    held = _held[:]
    del _held[:]
    for t in held:
        chunks = t._tempDataBuffer
        if not chunks or t.disconnected or t.disconnecting or t.dataBuffer or t._aborting:
            continue
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        t._tempDataBuffer = []
        t._tempDataLen = 0
        try:
            sent = t.socket.send(data)
        except OSError:
            sent = 0  # the transport finds out for itself below
        if sent < len(data):
            t.write(data[sent:])
