"""
A backend for connection-pool unit tests on a memory reactor: it completes
the pool's connection attempts and tells which connections the pool closed.
Protocol tests add how to answer a request.  Also a producer that records
the flow control it gets, and the client connection metrics that pool tests
read.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from linkrouter.routing.stats import ConnectionStats
from linkrouter.telemetry.stats import Counter, Gauge, MetricsRegistry


class ClientConnectionMetrics:
    """
    Mixin for pool tests: C{self.stats}, the L{ConnectionStats} of a client
    scope in C{self.registry}, and L{metrics} to read what it exports.
    """

    def setUp(self) -> None:
        self.registry = MetricsRegistry()
        self.stats = ConnectionStats(stats=self.registry.statsReceiver().scope("client"))

    def metrics(self) -> tuple[object, object, object]:
        """C{connects}, C{closes} and C{connections}."""
        found = {names[-1]: metric for names, metric in self.registry.items()}
        connects, closes, connections = found["connects"], found["closes"], found["connections"]
        assert isinstance(connects, Counter) and isinstance(closes, Counter)
        assert isinstance(connections, Gauge)
        return connects.value, closes.value, connections.read()


class RecordingProducer:
    """A push producer (a body source) that records the flow control it gets."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


class TCPStringTransport(StringTransport):
    """A L{StringTransport} that takes TCP socket options."""

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass


class FakeBackend:
    """Completes the pool's connection attempts on a memory reactor."""

    def __init__(self, reactor: MemoryReactorClock) -> None:
        self.reactor = reactor
        self.accepted = 0
        self.connections: list[tuple[Any, StringTransport]] = []

    def accept(self) -> None:
        """Complete every connection attempt made so far."""
        for _, _, factory, _, _ in self.reactor.tcpClients[self.accepted :]:
            protocol = factory.buildProtocol(None)
            assert protocol is not None
            transport = TCPStringTransport()
            protocol.makeConnection(transport)
            self.connections.append((protocol, transport))
        self.accepted = len(self.reactor.tcpClients)

    def closed(self) -> list[int]:
        """Which connections the pool closed (and finish closing them)."""
        indexes = []
        for n, (protocol, transport) in enumerate(self.connections):
            if transport.disconnecting:
                indexes.append(n)
                if transport.connected:
                    transport.connected = False
                    protocol.connectionLost(Failure(ConnectionDone()))
        return indexes
