# -*- test-case-name: tests.test_thrift_router -*-
"""
A C{protocol: thrift} router: the router core (binding, balancers, service
policy, from L{linkrouter.routing.assembly}) behind one Thrift server per
configured C{servers[]} entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from weakref import WeakSet

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, gatherResults, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from zope.interface import implementer

from linkrouter.config import ClientParams, RouterConfig, ServerConfig
from linkrouter.context import BuildContext, IDrainable
from linkrouter.interfaces import IClient
from linkrouter.naming import Address
from linkrouter.routing import Router
from linkrouter.routing.assembly import ProtocolHooks, buildRouter

from .client import ThriftEndpointClient, makeEndpointClient
from .config import ThriftClientKeys, ThriftRouterConfig, ThriftServerConfig
from .identifier import ThriftIdentifier
from .server import ThriftServerFactory, makeServerFactory


@implementer(IDrainable)
class ThriftRouterService(Service):
    """Listens on the router's servers; closes the router when stopped."""

    def __init__(
        self,
        router: Router,
        servers: Iterable[tuple[ServerConfig, ThriftServerFactory]],
        reactor: Any,
    ) -> None:
        self.router = router
        self.servers = list(servers)
        self._reactor = reactor
        self.ports: list[IListeningPort] = []
        self.endpoints: WeakSet[ThriftEndpointClient] = WeakSet()
        """Every endpoint client made for the router, closed when it stops."""

    @property
    def inFlight(self) -> int:
        return sum(factory.inFlight for _, factory in self.servers)

    def startService(self) -> None:
        for server, factory in self.servers:
            backlog = server.socketOptions.backlog or 50
            try:
                port = self._reactor.listenTCP(
                    server.port, factory, backlog=backlog, interface=server.ip
                )
            except Exception:
                for opened in self.ports:
                    opened.stopListening()
                self.ports = []
                raise
            self.ports.append(port)
        Service.startService(self)
        self.router.start()

    def _stopListening(self) -> Deferred[Any]:
        ports, self.ports = self.ports, []
        return DeferredList([port.stopListening() for port in ports])  # type: ignore[misc]

    def drain(self) -> Deferred[Any]:
        self._stopListening()
        return gatherResults([factory.drain() for _, factory in self.servers])

    def stopService(self) -> Deferred[Any]:
        Service.stopService(self)
        closing = [self._stopListening(), maybeDeferred(self.router.close)]
        closing.extend(endpoint.close() for endpoint in list(self.endpoints))
        for _, factory in self.servers:
            for connection in list(factory.connections):
                connection.close()
        return gatherResults(closing, consumeErrors=True)


def buildThriftRouter(config: RouterConfig, context: BuildContext) -> ThriftRouterService:
    routerConfig = config.protocolConfig
    if not isinstance(routerConfig, ThriftRouterConfig):
        routerConfig = ThriftRouterConfig()
    reactor = context.reactor

    def connect(address: Address, params: ClientParams) -> IClient:
        keys = params.protocol
        if not isinstance(keys, ThriftClientKeys):
            keys = ThriftClientKeys()
        clientConfig = keys.resolve(routerConfig)
        pool = params.hostConnectionPool
        endpoint = makeEndpointClient(
            address, clientConfig, reactor, pool.maxSize if pool else None
        )
        service.endpoints.add(endpoint)
        return endpoint

    router = buildRouter(config, context, ProtocolHooks(connect=connect))
    service = ThriftRouterService(router, (), reactor)
    identifier = ThriftIdentifier(config.dstPrefix, routerConfig.methodInDst)
    for server in config.servers:
        serverConfig = server.protocol
        if not isinstance(serverConfig, ThriftServerConfig):
            serverConfig = ThriftServerConfig()
        serverConfig = attrs.evolve(serverConfig, protocol=serverConfig.wireProtocol(routerConfig))
        factory = makeServerFactory(
            router.route, identifier, serverConfig, server.maxConcurrentRequests
        )
        service.servers.append((server, factory))
    return service
