# -*- test-case-name: tests.test_http_proxy -*-
"""
Glue to run the HTTP data path without the router core: a server whose
handler forwards every request to one endpoint pool.  Tests and the
benchmark use it; the router core assembles the same pieces with
identification, binding and balancing in between.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorTCP

from protocols.http import headers as l5d
from protocols.http.client import HTTPPool
from protocols.http.message import Request, Response
from protocols.http.server import AccessLogger, Handler, HTTPServerFactory, ServerConfig


def forwardTo(client: HTTPPool, dst: str = "/svc/fixed") -> Handler:
    """
    A handler sending every request to C{client} with the informational
    headers a router adds (C{Via}, C{l5d-dst-*}, C{l5d-reqid}).
    """
    service = l5d.serviceHeader(dst.encode())
    concrete = l5d.clientHeaders(b"/$/inet/" + client.authority.replace(b":", b"/"))

    def handle(request: Request) -> Deferred[Response]:
        l5d.annotate(request, service, concrete)
        d = client(request)
        d.addCallback(l5d.prepareResponse)
        return d

    return handle


def serve(
    reactor: IReactorTCP,
    handler: Handler,
    port: int = 0,
    interface: str = "127.0.0.1",
    config: ServerConfig | None = None,
    accessLog: AccessLogger | None = None,
) -> IListeningPort:
    """Listen on C{interface:port} with C{handler} answering every request."""
    factory = HTTPServerFactory(handler, config, accessLog)
    return reactor.listenTCP(port, factory, backlog=1024, interface=interface)  # type: ignore[arg-type]
