# -*- test-case-name: tests.test_routing_service -*-
"""
The service of one router: it listens on the router's servers, counts the
requests in flight, and drains gracefully.  Protocols supply a server
factory per C{servers[]} entry; the listening, counting and draining are the
same for every protocol.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.logger import Logger
from zope.interface import implementer

from linkrouter.config import ServerConfig
from linkrouter.context import IDrainable
from linkrouter.logs import logObserver

from .router import Router

log = Logger(observer=logObserver)


def listen(reactor: Any, server: ServerConfig, factory: IProtocolFactory) -> IListeningPort:
    """
    Listen on C{server}'s address with its C{socketOptions}: C{backlog},
    C{reuseAddr} (C{SO_REUSEADDR}, on by default as in Linkerd) and
    C{reusePort} (C{SO_REUSEPORT}: several processes, each with its own
    listening socket, share the port and the kernel spreads new connections
    over them).  Twisted's C{listenTCP} always sets C{SO_REUSEADDR} and never
    C{SO_REUSEPORT}, so other combinations build the socket here and hand it
    to the reactor (C{adoptStreamPort}).  Fails with C{CannotListenError}
    as C{listenTCP} does.
    """
    options = server.socketOptions
    backlog = options.backlog or 1024
    if options.reuseAddr and not options.reusePort:
        return reactor.listenTCP(  # type: ignore[no-any-return]
            server.port, factory, backlog=backlog, interface=server.ip
        )
    family = socket.AF_INET6 if ":" in server.ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            if options.reuseAddr:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if options.reusePort:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((server.ip, server.port))
            sock.listen(backlog)
        except OSError as e:
            raise CannotListenError(server.ip, server.port, e) from e
        sock.setblocking(False)
        return reactor.adoptStreamPort(sock.fileno(), family, factory)  # type: ignore[no-any-return]


@implementer(IDrainable)
class RouterService(Service):
    """
    Listens with C{factories} (one per server of the router) and owns the
    L{Router}.  Server factories may provide C{drain()} (stop reading new
    requests and close idle connections; it may return a Deferred that
    fires once its connections are closed) and C{closeAll()} (close every
    connection); both are called if present.  L{listening} is called with
    each port as it starts listening.

    Protocols call L{started} for each request they hand to the router and
    L{finished} once it is answered, so that L{drain} knows when the last
    one is done.
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

    def started(self) -> None:
        """A request is in flight until L{finished} is called for it."""
        self.inFlight += 1

    def finished(self) -> None:
        """A request counted by L{started} has been answered."""
        self.inFlight -= 1
        if self.inFlight == 0 and self._idle:
            idle, self._idle = self._idle, []
            for waiter in idle:
                waiter.callback(None)

    def startService(self) -> None:
        """
        Listen on every server now, so that a port in use fails start-up
        (the exception propagates); then start the router's housekeeping.
        """
        try:
            for server, factory in self.servers:
                port = listen(self.reactor, server, factory)
                self.ports.append(port)
                self.listening(server, factory, port)
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

    def listening(
        self, server: ServerConfig, factory: IProtocolFactory, port: IListeningPort
    ) -> None:
        """
        C{factory} now listens on C{port} for C{server}: a hook for
        protocols that name metrics by the real address (C{port: 0}).
        """

    def _stopListening(self) -> Deferred[Any]:
        ports, self.ports = self.ports, []
        return gatherResults([maybeDeferred(p.stopListening) for p in ports], consumeErrors=True)

    def _each(self, method: str) -> list[object]:
        results = []
        for _, factory in self.servers:
            call: Callable[[], object] | None = getattr(factory, method, None)
            if call is not None:
                results.append(call())
        return results

    def drain(self) -> Deferred[None]:
        """
        Stop accepting connections and new requests; fire once no request
        is in flight and every server factory's C{drain()} Deferred (if it
        returns one: its connections are closed) has fired.
        """
        self.draining = True
        self._stopListening()
        waits = [d for d in self._each("drain") if isinstance(d, Deferred)]
        if self.inFlight:

            def cancel(d: Deferred[None]) -> None:
                if d in self._idle:
                    self._idle.remove(d)

            waiter: Deferred[None] = Deferred(cancel)
            self._idle.append(waiter)
            waits.append(waiter)
        if not waits:
            return succeed(None)
        return gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)

    def stopService(self) -> Deferred[Any]:
        Service.stopService(self)
        stopped = self._stopListening()
        self._each("closeAll")
        return gatherResults([stopped, self.router.close()], consumeErrors=True)
