# -*- test-case-name: tests.test_http_router -*-
"""
The C{http} protocol plugin: Linkerd's HTTP/1.1 router keys, and the router
built from the HTTP engine (L{protocols.http.server},
L{protocols.http.client}) and the protocol-neutral router core.

Per request: C{clearContext}, the call-depth check, C{maxConcurrentRequests},
C{timestampHeader} and C{addForwardedHeader} on the server side; then the
identifiers name the request, the router core binds and balances, the
service policy retries and times out, and the informational C{l5d-*}
headers are set on the way out.  Anything the router cannot deliver gets a
router-made response with C{l5d-err}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import provider

from linkrouter._sessions import PoolLimits
from linkrouter.client.errors import NoEndpointsAvailable
from linkrouter.config import REQUIRED, ClientParams, RouterConfig, Section, ServerConfig
from linkrouter.context import BuildContext
from linkrouter.interfaces import IClient, IIdentifier, IProtocolPlugin, IStatsReceiver
from linkrouter.logs import logObserver
from linkrouter.naming import Address, Bound, Path
from linkrouter.policy.timeouts import DEADLINE_HEADER, Deadline, RequestTimeout, readDeadline
from linkrouter.routing import (
    BindingTimeout,
    Identification,
    Identified,
    NoHostsAvailable,
    RoutingError,
    Unidentified,
)
from linkrouter.routing.assembly import ProtocolHooks, buildRouter
from linkrouter.routing.service import RouterService
from linkrouter.routing.stats import RequestStats
from linkrouter.sockets import DEFAULTS as DEFAULT_SOCKET_OPTIONS
from linkrouter.tls import ClientTLSContexts, serverFactory, unwrap
from protocols.http import errors
from protocols.http import headers as l5d
from protocols.http.accesslog import AccessLog, AccessLogConfig, rollPolicyError
from protocols.http.client import HTTPPool, PoolConfig
from protocols.http.compression import Compressor
from protocols.http.identifiers import IdentifierChain
from protocols.http.message import BodyStream, Request, Response
from protocols.http.server import Handler, HTTPServerFactory
from protocols.http.server import ServerConfig as EngineConfig

log = Logger(observer=logObserver)

_LABELERS = ("ip", "ip:port", "connectionRandom", "requestRandom", "router", "static")


@attrs.frozen
class HttpRouterConfig:
    """
    The C{http} router keys beyond the common ones (the engine's limits,
    C{maxChunkKB} among them, are in C{engine}).
    """

    engine: EngineConfig = attrs.field(factory=EngineConfig)
    maxResponseKB: int = 5120
    compressionLevel: int = -1
    maxCallDepth: int = l5d.DEFAULT_MAX_CALL_DEPTH
    accessLog: AccessLogConfig | None = None


@attrs.frozen
class HttpServerConfig:
    """The C{http} keys of one C{servers[]} entry."""

    addForwardedHeader: tuple[l5d.LabelerConfig, l5d.LabelerConfig] | None = None
    timestampHeader: str | None = None


def _kb(section: Section, key: str, default: int) -> int:
    value = section.get(key, int, default)
    if value is None or value < 0:
        if value is not None:
            section.error("must be 0 or more", key)
        return default
    return int(value)


def _labeler(section: Section, key: str) -> l5d.LabelerConfig:
    sub = section.section(key)
    kind = sub.get("kind", str, "requestRandom") or "requestRandom"
    if kind not in _LABELERS:
        sub.error(f"labeler {kind!r} is not supported (supported: {', '.join(_LABELERS)})", "kind")
    label = sub.get("label", str, REQUIRED if kind == "static" else None)
    return l5d.LabelerConfig(kind, label)


class HttpRouter(RouterService):
    """
    An HTTP router: its servers, its identifiers and the router core.
    """

    def __init__(self, config: RouterConfig, context: BuildContext) -> None:
        protocolConfig = config.protocolConfig
        assert isinstance(protocolConfig, HttpRouterConfig)
        self.protocolConfig = protocolConfig
        self.engine = protocolConfig.engine
        self.context = context
        reactor = context.reactor
        identifiers: list[IIdentifier] = []
        for plugin in config.identifiers:
            identifierConfig: Any = plugin.config
            if attrs.has(type(identifierConfig)) and hasattr(identifierConfig, "dstPrefix"):
                identifierConfig = attrs.evolve(identifierConfig, dstPrefix=config.dstPrefix)
            identifiers.append(plugin.plugin.build(identifierConfig, context))
        self.identifier = IdentifierChain(tuple(identifiers))
        hooks = ProtocolHooks(
            connect=self._connect,
            statusOf=_statusOf,
            mayResend=_mayResend,
            deadlineOf=_deadlineOf,
            stampDeadline=_stampDeadline,
            discard=_discard,
            serviceAnnotator=_serviceAnnotator,
            clientAnnotator=_clientAnnotator,
        )
        RouterService.__init__(self, buildRouter(config, context, hooks), reactor)
        self.tls = ClientTLSContexts.forPolicy(config.client, context.baseDir)
        self.accessLog = (
            AccessLog(protocolConfig.accessLog) if protocolConfig.accessLog is not None else None
        )
        self.servers = [(server, self._serverFactory(server)) for server in config.servers]

    def _serverFactory(self, server: ServerConfig) -> Any:
        factory = HTTPServerFactory(
            _notListening,
            self.engine,
            self.accessLog,
            server.serverSession,
            self.reactor,
            server.socketOptions,
        )
        return serverFactory(server.tls, factory, self.context.baseDir)

    def stopService(self) -> Deferred[Any]:
        d = RouterService.stopService(self)
        if self.accessLog is not None:
            d.addBoth(self._closeLog)
        return d

    def _closeLog(self, result: object) -> object:
        assert self.accessLog is not None
        self.accessLog.close()
        return result

    def _connect(self, address: Address, params: ClientParams) -> IClient:
        reactor = self.context.reactor
        engine = self.engine
        return HTTPPool(
            reactor,
            reactor,
            address.host,
            address.port,
            PoolConfig(
                streamAfterContentLengthKB=engine.streamAfterContentLengthKB,
                streamingEnabled=engine.streamingEnabled,
                maxResponseKB=self.protocolConfig.maxResponseKB,
                maxChunkKB=engine.maxChunkKB,
                socketOptions=params.socketOptions or DEFAULT_SOCKET_OPTIONS,
                maxHeadersKB=engine.maxHeadersKB,
                maxInitialLineKB=engine.maxInitialLineKB,
            ),
            PoolLimits.fromParams(params),
            self.tls.creator(params.tls),
        )

    def listening(self, server: ServerConfig, factory: Any, port: Any) -> None:
        """
        Serve with request and connection metrics under
        C{server/<ip>/<port>}, the address bound.
        """
        address = port.getHost()
        scope = self.context.stats.scope("server", f"{address.host}/{address.port}")
        http = unwrap(factory)
        http.handler = self._serverHandler(server, scope)
        http.observe(scope)

    def _serverHandler(self, server: ServerConfig, scope: IStatsReceiver) -> Handler:
        stats = RequestStats(scope, self.router.classifier, self.reactor, _statusOf)
        httpServer = server.protocol
        assert httpServer is None or isinstance(httpServer, HttpServerConfig)
        forwarded = None
        if httpServer is not None and httpServer.addForwardedHeader is not None:
            by, for_ = httpServer.addForwardedHeader
            label = self.router.label
            forwarded = (l5d.labeler(by, label), l5d.labeler(for_, label))
        stamp = (
            httpServer.timestampHeader.encode("latin-1")
            if httpServer is not None and httpServer.timestampHeader
            else None
        )
        return _ServerHandler(
            self, stats, server.maxConcurrentRequests, server.clearContext, forwarded, stamp
        )


class _ServerHandler:
    """
    One server's request handler: the server-side checks and metrics, then
    identification and routing.  The response (a router-made one on any
    error: the Deferred never fails) is counted as it goes out.

    Per request this is a few method calls and two callbacks on the
    response's Deferred: no closures.
    """

    def __init__(
        self,
        owner: HttpRouter,
        stats: RequestStats,
        limit: int | None,
        clear: bool,
        forwarded: tuple[l5d.Labeler, l5d.Labeler] | None,
        stamp: bytes | None,
    ) -> None:
        self.owner = owner
        self.stats = stats
        self.limit = limit
        self.clear = clear
        self.forwarded = forwarded
        self.stamp = stamp
        self.inFlight = 0
        self.router = owner.router
        self.identifier = owner.identifier
        self.maxDepth = owner.protocolConfig.maxCallDepth
        self.maxErr = owner.engine.maxErrResponseKB
        self.compress = Compressor.forLevel(owner.protocolConfig.compressionLevel)

    def __call__(self, request: Request) -> Deferred[Response]:
        owner = self.owner
        start = self.stats.begin()
        depth = l5d.scanRequest(request)
        if self.clear and l5d.PLAIN not in request.ctx:
            l5d.clearContext(request)
        if owner.draining:
            response = errors.errorResponse(503, "router is shutting down", True, self.maxErr)
        elif depth >= self.maxDepth:
            response = errors.callDepthExceeded(self.maxDepth)
        elif self.limit is not None and self.inFlight >= self.limit:
            response = errors.overloaded(self.limit)
        else:
            if self.stamp is not None:
                l5d.addTimestamp(request, self.stamp, owner.reactor.seconds())
            if self.forwarded is not None:
                l5d.addForwarded(request, self.forwarded[0], self.forwarded[1])
            self.inFlight += 1
            owner.started()
            try:
                identified = self.identifier.identify(request)
            except Exception as e:
                log.failure("identifier failed", Failure(e))
                return succeed(
                    self._finish(errors.unidentified(f"identifier failed: {e}"), request, start)
                )
            # Deferred is an ABC (slow isinstance): test the plain answers first.
            if isinstance(identified, (Identified, Unidentified)):
                return self._dispatch(identified, request, start)
            return identified.addCallbacks(
                self._dispatch,
                self._identifierFailed,
                callbackArgs=(request, start),
                errbackArgs=(request, start),
            )
        self.stats.end(start, request, response, None)
        return succeed(response)

    def _finish(self, response: Response, request: Request, start: float) -> Response:
        self.inFlight -= 1
        self.owner.finished()
        self.stats.end(start, request, response, None)
        return response

    def _identifierFailed(self, failure: Failure, request: Request, start: float) -> Response:
        log.failure("identifier failed", failure)
        message = f"identifier failed: {failure.getErrorMessage()}"
        return self._finish(errors.unidentified(message), request, start)

    def _dispatch(
        self, identified: Identification, request: Request, start: float
    ) -> Deferred[Response]:
        if isinstance(identified, Unidentified):
            return succeed(self._finish(errors.unidentified(identified.reason), request, start))
        forwarded = identified.request if isinstance(identified.request, Request) else request
        try:
            d = self.router.route(identified, forwarded)
        except Exception:
            d = fail()
        return d.addCallbacks(
            self._respond,
            self._failed,
            callbackArgs=(request, start),
            errbackArgs=(identified, request, start),
        )

    def _respond(self, response: Response, request: Request, start: float) -> Response:
        if self.compress is not None and l5d.ACCEPTS_ENCODING in request.ctx:
            response = self.compress(request, response)
        return self._finish(l5d.prepareResponse(response), request, start)

    def _failed(
        self, failure: Failure, identified: Identified, request: Request, start: float
    ) -> Response | Deferred[Response]:
        maxErr = self.maxErr
        if failure.check(NoEndpointsAvailable):
            return self.router.noHosts(identified).addCallback(
                lambda error: self._finish(
                    _errorResponse(Failure(error), identified.dst, maxErr), request, start
                )
            )
        return self._finish(_errorResponse(failure, identified.dst, maxErr), request, start)


def _notListening(request: Request) -> Deferred[Response]:
    raise AssertionError("a server factory serves only once listening")


def _errorResponse(failure: Failure, path: Path, maxErr: int) -> Response:
    exc = failure.value
    dst = path.show
    if isinstance(exc, NoHostsAvailable):
        return errors.noHosts(dst, exc.detail, maxErr)
    if isinstance(exc, BindingTimeout):
        return errors.errorResponse(504, exc.message, True, maxErr, exc.detail)
    if isinstance(exc, RoutingError):
        return errors.errorResponse(502, exc.message, exc.retryable, maxErr, exc.detail)
    if isinstance(exc, RequestTimeout):
        return errors.timeout(dst, exc.seconds * 1000)
    if isinstance(exc, CancelledError):
        return errors.errorResponse(504, f"Request to {dst} was cancelled", False, maxErr)
    if not isinstance(exc, errors.UpstreamError | TimeoutError):
        log.failure("request to {dst} failed unexpectedly", failure, dst=dst)
    return errors.fromFailure(failure, dst)


def _statusOf(response: Any) -> int | None:
    status: int | None = getattr(response, "status", None)
    return status


def _mayResend(request: Request) -> bool:
    return isinstance(request.body, bytes)


def _deadlineOf(request: Request) -> Deadline | None:
    if l5d.PLAIN in request.ctx:
        return None
    values = request.headers.getAll(DEADLINE_HEADER)
    return readDeadline(values) if values else None


def _stampDeadline(request: Request, deadline: Deadline) -> None:
    request.headers.set(DEADLINE_HEADER, deadline.show.encode("ascii"))


def _discard(response: Response) -> None:
    if isinstance(response.body, BodyStream):
        response.body.stopProducing()


def _serviceAnnotator(dst: Path) -> Callable[[Request], None]:
    service = l5d.serviceHeader(dst.show.encode("latin-1"))

    def annotate(request: Request) -> None:
        request.ctx["dst"] = service

    return annotate


_NO_SERVICE = l5d.serviceHeader(b"")


def _clientAnnotator(bound: Bound) -> Callable[[Request], None]:
    client = l5d.clientHeaders(
        bound.id.show.encode("latin-1"),
        bound.residual.show.encode("latin-1") if len(bound.residual) else b"",
    )

    def annotate(request: Request) -> None:
        service = request.ctx.get("dst", _NO_SERVICE)
        assert isinstance(service, tuple)
        l5d.annotate(request, service, client)

    return annotate


@provider(IProtocolPlugin)
class httpProtocol:
    """C{protocol: http}."""

    kind = "http"
    defaultPort = 4140
    defaultIdentifier = {"kind": "io.l5d.header.token"}
    defaultClassifier = "io.l5d.http.nonRetryable5XX"

    @staticmethod
    def parseConfig(section: Section) -> HttpRouterConfig:
        accessLog = None
        path = section.get("httpAccessLog", str, None)
        policy = section.get("httpAccessLogRollPolicy", str, "never") or "never"
        append = section.get("httpAccessLogAppend", bool, True)
        rotate = section.get("httpAccessLogRotateCount", int, -1)
        problem = rollPolicyError(policy)
        if problem is not None:
            section.error(problem, "httpAccessLogRollPolicy")
        if path:
            accessLog = AccessLogConfig(
                path, policy, bool(append), -1 if rotate is None else int(rotate)
            )
        compression = section.get("compressionLevel", int, -1)
        if compression is not None and not -1 <= compression <= 9:
            section.error("must be -1 (automatic) or 0 to 9", "compressionLevel")
        maxChunkKB = _kb(section, "maxChunkKB", 8)
        if maxChunkKB == 0:
            section.error("must be 1 or more", "maxChunkKB")
        engine = EngineConfig(
            maxHeadersKB=_kb(section, "maxHeadersKB", 8),
            maxInitialLineKB=_kb(section, "maxInitialLineKB", 4),
            streamingEnabled=bool(section.get("streamingEnabled", bool, True)),
            streamAfterContentLengthKB=_kb(section, "streamAfterContentLengthKB", 5),
            maxRequestKB=_kb(section, "maxRequestKB", 5120),
            maxErrResponseKB=_kb(section, "maxErrResponseKB", errors.DEFAULT_MAX_ERR_RESPONSE_KB),
            maxChunkKB=maxChunkKB or 8,
        )
        return HttpRouterConfig(
            engine=engine,
            maxResponseKB=_kb(section, "maxResponseKB", 5120),
            compressionLevel=-1 if compression is None else int(compression),
            maxCallDepth=_kb(section, "maxCallDepth", l5d.DEFAULT_MAX_CALL_DEPTH),
            accessLog=accessLog,
        )

    @staticmethod
    def parseServerConfig(section: Section) -> HttpServerConfig:
        forwarded = None
        if section.has("addForwardedHeader"):
            sub = section.section("addForwardedHeader")
            forwarded = (_labeler(sub, "by"), _labeler(sub, "for"))
        section.section("engine").readAll()
        return HttpServerConfig(forwarded, section.get("timestampHeader", str, None))

    @staticmethod
    def parseClientConfig(section: Section) -> None:
        section.section("engine").readAll()
        return None

    @staticmethod
    def parseServiceConfig(section: Section) -> None:
        return None

    @staticmethod
    def buildRouter(config: object, context: object) -> HttpRouter:
        assert isinstance(config, RouterConfig) and isinstance(context, BuildContext)
        return HttpRouter(config, context)
