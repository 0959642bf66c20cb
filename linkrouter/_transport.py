# -*- test-case-name: tests.test_http_server -*-
"""
Writing to TCP transports on the data path, shared by every protocol.
"""

from __future__ import annotations

from twisted.internet import tcp


def write(transport: object, data: bytes) -> None:
    """
    C{transport.write(data)}, but when a TCP transport has nothing queued the
    bytes go straight to the socket: this saves the reactor a writer
    registration and a loop turn per message.  Whatever the socket does not
    take is queued by the transport as usual; a transport whose connection
    is gone drops the bytes, as Twisted's own C{write} does.
    """
    if type(transport) in _TCP and not (
        transport.disconnected  # type: ignore[attr-defined]
        or transport.dataBuffer  # type: ignore[attr-defined]
        or transport._tempDataBuffer  # type: ignore[attr-defined]
        or transport.disconnecting  # type: ignore[attr-defined]
        or transport.producerPaused  # type: ignore[attr-defined]
    ):
        try:
            sent = transport.socket.send(data)  # type: ignore[attr-defined]
        except OSError:
            sent = 0  # the transport finds out for itself below
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)  # type: ignore[attr-defined]


_TCP = (tcp.Server, tcp.Client)
