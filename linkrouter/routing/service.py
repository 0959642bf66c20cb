# -*- test-case-name: tests.test_routing_service -*-
"""
The service of one router: it listens on the router's servers, counts the
requests in flight, and drains gracefully.  Protocols supply a server
factory per C{servers[]} entry; the listening, counting and draining are the
same for every protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.logger import Logger
from zope.interface import implementer

from linkrouter.config import ServerConfig
from linkrouter.context import IDrainable

from .router import Router

log = Logger()

T = TypeVar("T")


@implementer(IDrainable)
class RouterService(Service):
    """
    Listens with C{factories} (one per server of the router) and owns the
    L{Router}.  Server factories may provide C{drain()} (stop reading new
    requests and close idle connections) and C{closeAll()} (close every
    connection); both are called if present.

    Protocols wrap each request they hand to the router with L{track}, so
    that L{drain} knows when the last one has finished.
    """

    def __init__(
        self,
        router: Router,
        reactor: Any,
        servers: Sequence[tuple[ServerConfig, IProtocolFactory]] = (),
    ) -> None:
        self.router = router
        self.reactor = reactor
        self.servers = list(servers)
        self.ports: list[IListeningPort] = []
        self.inFlight = 0
        self._idle: list[Deferred[None]] = []
        self.draining = False

    def track(self, d: Deferred[T]) -> Deferred[T]:
        """Count C{d} as a request in flight until it fires."""
        self.inFlight += 1
        return d.addBoth(self._done)

    def _done(self, result: T) -> T:
        self.inFlight -= 1
        if self.inFlight == 0 and self._idle:
            idle, self._idle = self._idle, []
            for waiter in idle:
                waiter.callback(None)
        return result

    def startService(self) -> None:
        """
        Listen on every server now, so that a port in use fails start-up
        (the exception propagates); then start the router's housekeeping.
        """
        try:
            for server, factory in self.servers:
                port = self.reactor.listenTCP(server.port, factory, interface=server.ip)
                self.ports.append(port)
                log.info(
                    "router {label} listening on {address}",
                    label=self.router.label,
                    address=port.getHost(),
                )
        except Exception:
            for port in self.ports:
                port.stopListening()
            self.ports = []
            raise
        self.router.start()
        Service.startService(self)

    def _stopListening(self) -> Deferred[Any]:
        ports, self.ports = self.ports, []
        return gatherResults([maybeDeferred(p.stopListening) for p in ports], consumeErrors=True)

    def _each(self, method: str) -> None:
        for _, factory in self.servers:
            call: Callable[[], object] | None = getattr(factory, method, None)
            if call is not None:
                call()

    def drain(self) -> Deferred[None]:
        """
        Stop accepting connections and new requests; fire once no request
        is in flight.
        """
        self.draining = True
        self._stopListening()
        self._each("drain")
        if self.inFlight == 0:
            return succeed(None)

        def cancel(d: Deferred[None]) -> None:
            if d in self._idle:
                self._idle.remove(d)

        waiter: Deferred[None] = Deferred(cancel)
        self._idle.append(waiter)
        return waiter

    def stopService(self) -> Deferred[Any]:
        Service.stopService(self)
        stopped = self._stopListening()
        self._each("closeAll")
        return gatherResults([stopped, self.router.close()], consumeErrors=True)
