# -*- test-case-name: tests.test_admin_server -*-
"""
The admin web server (C{admin.ip}:C{admin.port}, 9990 by default).

L{makeAdminSite} takes every collaborator explicitly and returns a
C{twisted.web.server.Site}; the service tree listens with it.  Paths are
matched exactly (one trailing slash ignored) after the
L{linkrouter.admin.security} filter, which answers 404 for refused paths as
for unknown ones.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevelFilterPredicate
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from linkrouter.logs import logObserver
from linkrouter.telemetry.export import flatJson, influxdb, prometheus, select, treeJson
from linkrouter.telemetry.stats import MetricsRegistry

from ._resources import JSON, TEXT, StreamingResource, arg, flag, jsonBody, respondLater, textBody
from .delegator import DelegatorResource, RouterHandle
from .loglevels import LoggingResource
from .security import AdminSecurity

_log = Logger(observer=logObserver)

PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"


def _version() -> str:
    try:
        return metadata.version("linkrouter")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Get(Resource):
    """A GET endpoint computed by C{render(request) -> bytes}."""

    isLeaf = True

    def __init__(self, render: Callable[[Request], bytes]) -> None:
        super().__init__()
        self._render = render

    def render_GET(self, request: Request) -> bytes:
        return self._render(request)


class _Ping(Resource):
    """C{pong} to any method, as TwitterServer's ping answers."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        return textBody(request, "pong")


class _Later(Resource):
    """A GET endpoint answering the JSON of what C{provide()} fires with."""

    isLeaf = True

    def __init__(
        self, provide: Callable[[], object], clock: IReactorTime, timeout: float = 2.0
    ) -> None:
        super().__init__()
        self._provide = provide
        self._clock = clock
        self._timeout = timeout

    def render_GET(self, request: Request) -> object:
        result: Deferred[bytes] = maybeDeferred(self._provide).addCallback(
            lambda value: jsonBody(request, value)
        )
        return respondLater(request, result, self._clock, self._timeout)


_DURATION_TERM = re.compile(
    r"(\d+)\.(nanosecond|microsecond|millisecond|second|minute|hour|day)s?", re.IGNORECASE
)
_UNIT_SECONDS = {
    "nanosecond": 1e-9,
    "microsecond": 1e-6,
    "millisecond": 1e-3,
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
}


def parseDuration(text: str) -> float | None:
    """
    Seconds in a duration as Finagle writes them (C{5.seconds},
    C{1.minute+30.seconds}), or C{None} if C{text} is not one.
    """
    total = 0.0
    for term in text.strip().split("+"):
        match = _DURATION_TERM.fullmatch(term.strip())
        if match is None:
            return None
        total += int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    return total


class _Shutdown(Resource):
    """
    C{POST /admin/shutdown}: the graceful stop, as TwitterServer's; an
    optional C{grace} (C{10.seconds}) replaces C{admin.shutdownGraceMs}
    for this stop.
    """

    isLeaf = True

    def __init__(self, shutdown: Callable[..., object], clock: IReactorTime) -> None:
        super().__init__()
        self._shutdown = shutdown
        self._clock = clock

    def render_POST(self, request: Request) -> bytes:
        text = arg(request, "grace")
        if text is None:
            _log.info("shutdown requested through the admin server")
            stop: tuple[object, ...] = ()
        else:
            grace = parseDuration(text)
            if grace is None:
                message = f"could not parse 'grace' parameter: {text} is not a valid duration\n"
                return textBody(request, message, 400)
            _log.info("shutdown requested through the admin server, grace {grace}s", grace=grace)
            stop = (grace,)
        # Answer first: stopping the services may close this connection.
        self._clock.callLater(0, self._shutdown, *stop)
        return textBody(request, "quitting\n")


class _AdminRoot(Resource):
    """Exact-path dispatch behind the security filter."""

    isLeaf = True

    def __init__(self, routes: Mapping[str, IResource], security: AdminSecurity) -> None:
        super().__init__()
        self.routes = routes
        self._security = security

    def render(self, request: Request) -> bytes | int:
        path = request.path.decode("utf-8", "replace")
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        resource = self.routes.get(path)
        if resource is None or not self._security.allows(path):
            return textBody(request, "Not found\n", 404)
        result: bytes | int = resource.render(request)
        return result

    def index(self) -> list[str]:
        return sorted(p for p in self.routes if self._security.allows(p))


def _sortedNames(boundNames: Callable[[], object] | None) -> Deferred[list[str]]:
    def sort(names: Any) -> list[str]:
        return sorted(str(name) for name in names)

    return maybeDeferred(boundNames or list).addCallback(sort)


def _metricsJson(registry: MetricsRegistry) -> Callable[[Request], Iterator[str]]:
    def produce(request: Request) -> Iterator[str]:
        q = arg(request, "q")
        # A subtree that holds nothing (yet) is an empty object, as in
        # Linkerd: a poller may ask before the first client exists.
        items = select(registry.items(), q) or []
        if flag(request, "tree"):
            return treeJson(items)
        return flatJson(items, pretty=flag(request, "pretty"))

    return produce


def prometheusResource(
    registry: MetricsRegistry, prefix: str = "", cooperator: task.Cooperator | None = None
) -> IResource:
    """All metrics in Prometheus text format (see L{prometheus})."""
    return StreamingResource(
        lambda request: prometheus(registry.items(), prefix), PROMETHEUS, cooperator
    )


def influxdbResource(
    registry: MetricsRegistry, cooperator: task.Cooperator | None = None
) -> IResource:
    """All metrics in InfluxDB line protocol, tagged with the caller's C{Host}."""

    def produce(request: Request) -> Iterator[str]:
        host = (request.getHeader("host") or "none").strip()
        return influxdb(registry.items(), host)

    return StreamingResource(produce, TEXT, cooperator)


def makeAdminSite(
    registry: MetricsRegistry,
    reactor: IReactorTime,
    *,
    config: object = None,
    routers: Mapping[str, RouterHandle] | None = None,
    shutdown: Callable[..., object] | None = None,
    logLevels: LogLevelFilterPredicate | None = None,
    loggers: Iterable[str] = (),
    clientState: Callable[[], object] | None = None,
    boundNames: Callable[[], object] | None = None,
    resources: Mapping[str, IResource] | None = None,
    security: AdminSecurity | None = None,
    serverInfo: Mapping[str, object] | None = None,
    cooperator: task.Cooperator | None = None,
) -> Site:
    """
    The admin web site.

    @param registry: served by C{/admin/metrics.json} and
        C{/admin/metrics/prometheus}.
    @param reactor: clock for timeouts, uptime and deferred shutdown.
    @param config: the parsed configuration, JSON-ready, for C{/config.json}.
    @param routers: router handles by label, for C{/delegator.json}.
    @param shutdown: called (on the next reactor turn) by
        C{POST /admin/shutdown}: starts the graceful stop; with the
        request's C{grace} in seconds, if it has one.
    @param logLevels: the log filter's predicate, for C{/logging.json};
        C{loggers} are the namespaces it lists besides the root.
    @param clientState: returns (or fires with) the JSON of
        C{/client_state.json}.
    @param boundNames: returns (or fires with) the bound names (strings)
        of C{/bound-names.json}.
    @param resources: extra endpoints by path (from telemeters); they
        replace built-in endpoints of the same path.
    @param security: the C{admin.security} section.
    @param serverInfo: extra keys for C{/admin/server_info}.
    @param cooperator: schedules streamed bodies (by default, one on
        C{reactor}).
    """
    if cooperator is None:
        cooperator = task.Cooperator(scheduler=lambda step: reactor.callLater(0, step))
    started = reactor.seconds()
    startTime = datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat()
    info = {"name": "linkrouter", "version": _version(), **(serverInfo or {})}

    def serverInfoJson(request: Request) -> bytes:
        uptimeMs = int((reactor.seconds() - started) * 1000)
        return jsonBody(request, {**info, "start_time": startTime, "uptime": uptimeMs})

    routes: dict[str, IResource] = {
        "/admin/ping": _Ping(),
        "/admin/metrics.json": StreamingResource(_metricsJson(registry), JSON, cooperator),
        "/admin/metrics/prometheus": prometheusResource(registry, "", cooperator),
        "/config.json": _Get(lambda request: jsonBody(request, config or {})),
        "/delegator.json": DelegatorResource(routers or {}, reactor),
        "/admin/server_info": _Get(serverInfoJson),
        "/bound-names.json": _Later(lambda: _sortedNames(boundNames), reactor),
        "/client_state.json": _Later(clientState or dict, reactor),
    }
    if shutdown is not None:
        routes["/admin/shutdown"] = _Shutdown(shutdown, reactor)
    if logLevels is not None:
        routes["/logging.json"] = LoggingResource(logLevels, loggers)
    for path, resource in (resources or {}).items():
        routes["/" + path.lstrip("/")] = resource

    root = _AdminRoot(routes, security or AdminSecurity())
    listing = _Get(lambda request: textBody(request, "".join(p + "\n" for p in root.index())))
    for path in ("/", "/admin", "/admin/index.txt"):
        routes[path] = listing
    site = Site(root, reactor=reactor)
    site.displayTracebacks = False
    return site
