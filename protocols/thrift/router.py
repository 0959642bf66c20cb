# -*- test-case-name: tests.test_thrift_router -*-
"""
A C{protocol: thrift} router: the router core (binding, balancers, service
policy, from L{linkrouter.routing.assembly}) behind one Thrift server per
configured C{servers[]} entry, run by the shared L{RouterService}.
"""

from __future__ import annotations

import attrs

from linkrouter.config import ClientParams, RouterConfig
from linkrouter.context import BuildContext
from linkrouter.interfaces import IClient
from linkrouter.naming import Address
from linkrouter.routing.assembly import ProtocolHooks, buildRouter
from linkrouter.routing.service import RouterService
from linkrouter.tls import ClientTLSContexts, serverFactory

from .client import PoolLimits, ThriftEndpointClient
from .config import ThriftClientKeys, ThriftRouterConfig, ThriftServerConfig
from .identifier import ThriftIdentifier
from .server import ThriftServerFactory


class ThriftRouter(RouterService):
    """A Thrift router: its servers, its identifier and the router core."""

    def __init__(self, config: RouterConfig, context: BuildContext) -> None:
        protocolConfig = config.protocolConfig
        if not isinstance(protocolConfig, ThriftRouterConfig):
            protocolConfig = ThriftRouterConfig()
        self.protocolConfig = protocolConfig
        reactor = context.reactor
        router = buildRouter(config, context, ProtocolHooks(connect=self._connect))
        RouterService.__init__(self, router, reactor)
        self.tls = ClientTLSContexts.forPolicy(config.client, context.baseDir)
        identifier = ThriftIdentifier(config.dstPrefix, protocolConfig.methodInDst)
        for server in config.servers:
            serverConfig = server.protocol
            if not isinstance(serverConfig, ThriftServerConfig):
                serverConfig = ThriftServerConfig()
            serverConfig = attrs.evolve(
                serverConfig, protocol=serverConfig.wireProtocol(protocolConfig)
            )
            factory = ThriftServerFactory(
                router.route,
                identifier,
                serverConfig,
                server.maxConcurrentRequests,
                server.serverSession,
                reactor,
                self.started,
                self.finished,
            )
            self.servers.append((server, serverFactory(server.tls, factory, context.baseDir)))

    def _connect(self, address: Address, params: ClientParams) -> IClient:
        keys = params.protocol
        if not isinstance(keys, ThriftClientKeys):
            keys = ThriftClientKeys()
        return ThriftEndpointClient(
            address,
            keys.resolve(self.protocolConfig),
            self.reactor,
            PoolLimits.fromParams(params),
            tls=self.tls.creator(params.tls),
        )
