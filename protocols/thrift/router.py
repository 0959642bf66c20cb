# -*- test-case-name: tests.test_thrift_router -*-
"""
A C{protocol: thrift} router: the router core (binding, balancers, service
policy, from L{linkrouter.routing.assembly}) behind one Thrift server per
configured C{servers[]} entry, run by the shared L{RouterService}.

Each server gets its entry's C{socketOptions} and C{clearContext}; each
endpoint client the C{socketOptions} of its C{client} entry.

Each server records Finagle's server metrics under
C{rt/<label>/server/<ip>/<port>}, the address it is bound to: C{requests},
C{success}, C{failures} (and C{failures/<kind>}) as the router's response
classifier counts them, C{request_latency_ms} and C{pending}, and the
connection metrics C{connects}, C{closes} and C{connections}.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs

from linkrouter.config import ClientParams, RouterConfig, ServerConfig
from linkrouter.context import BuildContext
from linkrouter.interfaces import IClient
from linkrouter.naming import Address
from linkrouter.policy.timeouts import Deadline
from linkrouter.routing.assembly import ProtocolHooks, buildRouter
from linkrouter.routing.service import RouterService
from linkrouter.routing.stats import RequestStats
from linkrouter.sockets import DEFAULTS
from linkrouter.tls import ClientTLSContexts, serverFactory, unwrap

from .client import PoolLimits, ThriftEndpointClient
from .config import ThriftClientKeys, ThriftRouterConfig, ThriftServerConfig
from .identifier import ThriftCall, ThriftIdentifier
from .server import ThriftServerFactory


class ThriftRouter(RouterService):
    """A Thrift router: its servers, its identifier and the router core."""

    def __init__(self, config: RouterConfig, context: BuildContext) -> None:
        protocolConfig = config.protocolConfig
        if not isinstance(protocolConfig, ThriftRouterConfig):
            protocolConfig = ThriftRouterConfig()
        self.protocolConfig = protocolConfig
        self.context = context
        reactor = context.reactor
        router = buildRouter(
            config, context, ProtocolHooks(connect=self._connect, deadlineOf=deadlineOf)
        )
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
                server.socketOptions,
                server.clearContext,
            )
            self.servers.append((server, serverFactory(server.tls, factory, context.baseDir)))

    def listening(self, server: ServerConfig, factory: Any, port: Any) -> None:
        """Record the server's metrics under C{server/<ip>/<port>}, the address bound."""
        address = port.getHost()
        scope = self.context.stats.scope("server", f"{address.host}/{address.port}")
        thrift = unwrap(factory)
        assert isinstance(thrift, ThriftServerFactory)
        thrift.observe(scope, RequestStats(scope, self.router.classifier, self.reactor))

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
            socketOptions=params.socketOptions or DEFAULTS,
        )


DEADLINE_CONTEXT = b"com.twitter.finagle.Deadline"
"""The TTwitter broadcast context that carries a call's deadline."""


def deadlineOf(call: ThriftCall) -> Deadline | None:
    """
    The deadline a call carries in its TTwitter header (two big-endian i64
    nanosecond times: when it was set, when it expires), or C{None}.  The
    router enforces it like C{l5d-ctx-deadline}; the header, contexts
    included, travels on to the next hop.  (A C{clearContext} server has
    removed a caller's contexts before this reads them.)
    """
    header = call.header
    if header is None:
        return None
    for key, value in header.contexts:
        if key == DEADLINE_CONTEXT and len(value) == 16:
            timestamp, deadline = _DEADLINE.unpack(value)
            return Deadline(timestamp, deadline)
    return None


_DEADLINE = struct.Struct(">qq")
