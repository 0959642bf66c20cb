# -*- test-case-name: tests.test_service -*-
"""
The service tree of a running router: telemeters, admin server, namers,
interpreters and routers, built from a L{LinkerConfig}.

Start-up is synchronous and ordered (metrics, telemeters, admin, then each
router), so no router accepts a request before its namers and the admin
server are up; anything that cannot start raises L{StartupError} with one
line naming the cause.  Stopping drains the routers first: they stop
accepting at once and in-flight requests get up to
C{admin.shutdownGraceMs} to finish before everything is closed.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Any

import attrs
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, gatherResults, maybeDeferred
from twisted.internet.error import CannotListenError, ReactorNotRunning
from twisted.logger import Logger

from linkrouter._plugins import PluginRegistry
from linkrouter.config import LinkerConfig, PluginConfig, RouterConfig
from linkrouter.context import BuildContext, IDrainable
from linkrouter.interfaces import IInterpreter, INamer, ITelemeter
from linkrouter.logs import LOGGERS, logLevels, logObserver
from linkrouter.naming import Path
from linkrouter.telemetry import MetricsRegistry
from namers.transformers import TransformingInterpreter, TransformingNamer

log = Logger(observer=logObserver)

AdminSiteFactory = Callable[..., Any]
"""L{linkrouter.admin.makeAdminSite}, or a stand-in with its signature."""


class StartupError(Exception):
    """
    The router cannot start; C{str()} is one line naming the cause.
    """


@attrs.frozen
class RouterRuntime:
    """
    A built router: its configuration, interpreter and service.
    """

    config: RouterConfig
    interpreter: IInterpreter
    service: IService

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def dtab(self) -> Any:
        core = getattr(self.service, "router", None)
        return core.dtab if core is not None else self.config.dtab


def _build(what: str, plugin: PluginConfig, context: BuildContext) -> Any:
    try:
        return plugin.plugin.build(plugin.config, context)
    except Exception as e:
        raise StartupError(f"{what} ({plugin.plugin.kind}): cannot build: {_reason(e)}") from e


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    if isinstance(e, CannotListenError):
        reason = getattr(e.socketError, "strerror", None) or e.socketError
        return f"cannot listen on {e.interface or '*'}:{e.port}: {reason}"
    return str(e) or type(e).__name__


class _AdminService(Service):
    """
    Listens with the admin site on C{admin.ip}:C{admin.port}, behind TLS if
    C{admin.tls} is set.
    """

    def __init__(self, linker: LinkerService, makeSite: AdminSiteFactory) -> None:
        self.linker = linker
        self.makeSite = makeSite
        self.port: Any = None

    def startService(self) -> None:
        linker = self.linker
        admin = linker.config.admin
        resources: dict[str, Any] = {}
        for telemeter in linker.telemeters:
            resources.update(telemeter.adminResources() or {})  # type: ignore[call-overload]
        site = self.makeSite(
            linker.metrics,
            linker.reactor,
            config=linker.config.source,
            routers={r.label: r for r in linker.routers},
            shutdown=linker.shutdown,
            resources=resources,
            security=admin.security,
            clientState=linker.clientState,
            boundNames=linker.boundNames,
            logLevels=logLevels,
            loggers=LOGGERS,
        )
        if admin.tls is not None:
            from linkrouter.tls import serverFactory

            site = serverFactory(admin.tls, site, linker.baseDir)
        site.noisy = False  # this service logs where it listens, once
        self.port = self.linker.reactor.listenTCP(admin.port, site, interface=admin.ip)
        Service.startService(self)
        log.info(
            "admin server listening on {address}{tls}",
            address=self.port.getHost(),
            tls=" (TLS)" if admin.tls is not None else "",
        )

    def stopService(self) -> Deferred[None] | None:
        Service.stopService(self)
        port, self.port = self.port, None
        return maybeDeferred(port.stopListening) if port is not None else None


class LinkerService(MultiService):
    """
    The whole router: build it with L{LinkerService.build}.

    @ivar config: the configuration it was built from.
    @ivar metrics: the metrics registry everything records into.
    @ivar namers: the configured namers as C{(full prefix, namer)} pairs.
    @ivar routers: the built routers, in configuration order.
    @ivar telemeters: the built telemeters.
    """

    def __init__(
        self,
        config: LinkerConfig,
        reactor: Any,
        registry: PluginRegistry,
        metrics: MetricsRegistry,
        baseDir: str,
    ) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self._grace: float | None = None  # set by shutdown(grace)
        self.registry = registry
        self.metrics = metrics
        self.baseDir = baseDir
        self.namers: tuple[tuple[Path, INamer], ...] = ()
        self.routers: tuple[RouterRuntime, ...] = ()
        self.telemeters: tuple[ITelemeter, ...] = ()
        self.closables: list[Any] = []
        """Namers with a C{close()} (their own connections, threads), closed last."""

    @classmethod
    def build(
        cls,
        config: LinkerConfig,
        reactor: Any,
        registry: PluginRegistry,
        metrics: MetricsRegistry | None = None,
        baseDir: str | None = None,
        makeAdminSite: AdminSiteFactory | None = None,
    ) -> LinkerService:
        """
        Build every namer, interpreter, telemeter and router of C{config}
        (nothing listens until the service starts).

        @param makeAdminSite: makes the admin server's site from the
            service; without it there is no admin server.
        @raise StartupError: a plugin could not build its part.
        """
        if metrics is None:
            metrics = MetricsRegistry(reactor)
        linker = cls(config, reactor, registry, metrics, baseDir or os.getcwd())
        stats = metrics.statsReceiver()
        base = BuildContext(reactor, stats, registry, linker.baseDir)
        linker.addService(metrics.service())

        telemeters = []
        for n, entry in enumerate(config.telemetry):
            telemeter = _build(f"telemetry[{n}]", entry, base)
            telemeters.append(telemeter)
            child = telemeter.service()
            if child is not None:
                linker.addService(IService(child))
        linker.telemeters = tuple(telemeters)

        if makeAdminSite is not None:
            linker.addService(_AdminService(linker, makeAdminSite))

        namers = []
        for n, namerEntry in enumerate(config.namers):
            what = f"namers[{n}]"
            context = attrs.evolve(base, stats=stats.scope("namer", namerEntry.prefix.show))
            namer = _build(what, namerEntry.plugin, context)
            if callable(getattr(namer, "close", None)):
                linker.closables.append(namer)
            transformers = [
                _build(f"{what}.transformers", t, context) for t in namerEntry.transformers
            ]
            if transformers:
                namer = TransformingNamer(namer, transformers)
            namers.append((Path(b"#") + namerEntry.prefix, namer))
        linker.namers = tuple(namers)
        base = attrs.evolve(base, namers=linker.namers)

        routers = []
        for n, router in enumerate(config.routers):
            routers.append(linker._buildRouter(f"routers[{n}]", router, base))
        linker.routers = tuple(routers)
        for runtime in linker.routers:
            linker.addService(runtime.service)
        return linker

    def _buildRouter(self, what: str, router: RouterConfig, base: BuildContext) -> RouterRuntime:
        what = f"{what} ({router.label})"
        context = attrs.evolve(base, stats=base.stats.scope("rt", router.label), label=router.label)
        if router.interpreter.plugin is None:
            raise StartupError(
                f"{what}: no interpreter: the 'default' interpreter is not installed"
            )
        interpreter = _build(f"{what}.interpreter", router.interpreter.plugin, context)
        transformers = [
            _build(f"{what}.interpreter.transformers", t, context)
            for t in router.interpreter.transformers
        ]
        if transformers:
            interpreter = TransformingInterpreter(interpreter, transformers)
        context = attrs.evolve(context, interpreter=interpreter)
        try:
            service = IService(router.plugin.buildRouter(router, context))
        except Exception as e:
            raise StartupError(f"{what}: cannot build the router: {_reason(e)}") from e
        return RouterRuntime(router, interpreter, service)

    def startService(self) -> None:
        """
        Start every child in order; if one fails, stop those started and
        raise L{StartupError}.
        """
        Service.startService(self)
        started: list[IService] = []
        for child in self:
            try:
                child.startService()
            except Exception as e:
                self.running = 0
                for done in reversed(started):
                    done.stopService()
                name = next((r.config.label for r in self.routers if r.service is child), None)
                what = f"router {name}" if name else type(child).__name__.lstrip("_")
                raise StartupError(f"{what}: {_reason(e)}") from e
            started.append(child)
        # Everything built so far lives as long as the process: keep it out
        # of the collector's way (a full collection over it costs ~100 ms).
        gc.collect()
        gc.freeze()

    def stopService(self) -> Deferred[Any]:
        """
        Drain the routers (for up to C{admin.shutdownGraceMs}), then stop
        every child in reverse order.
        """
        Service.stopService(self)
        draining = [
            maybeDeferred(IDrainable(r.service).drain)
            for r in self.routers
            if IDrainable.providedBy(r.service) and r.service.running
        ]
        grace = self._grace
        if grace is None:
            grace = self.config.admin.shutdownGraceMs / 1000.0
        log.info(
            "stopping: draining {count} routers for up to {grace}s",
            count=len(draining),
            grace=grace,
        )
        drained: Deferred[Any] = gatherResults(draining, consumeErrors=True)
        drained.addTimeout(grace, self.reactor)

        def overdue(failure: Any) -> None:
            left = sum(
                IDrainable(r.service).inFlight
                for r in self.routers
                if IDrainable.providedBy(r.service)
            )
            log.warn(
                "stopping: grace period over, closing {left} in-flight requests ({why})",
                left=left,
                why=failure.getErrorMessage(),
            )

        drained.addErrback(overdue)

        def stopChildren(_: object) -> Deferred[Any]:
            return DeferredList(
                [maybeDeferred(child.stopService) for child in reversed(list(self))],
                consumeErrors=True,
            )

        def closeNamers(_: object) -> Deferred[Any]:
            return DeferredList(
                [maybeDeferred(namer.close) for namer in self.closables], consumeErrors=True
            )

        return drained.addCallback(stopChildren).addCallback(closeNamers)

    def _routerCores(self) -> list[tuple[str, Any]]:
        cores = []
        for runtime in self.routers:
            core = getattr(runtime.service, "router", None)
            if core is not None:
                cores.append((runtime.label, core))
        return cores

    def boundNames(self) -> list[str]:
        """Every bound name with a live client, for C{/bound-names.json}."""
        return sorted({name for _, core in self._routerCores() for name in core.boundNames()})

    def clientState(self) -> dict[str, Any]:
        """
        Each router's clients and their endpoints, for C{/client_state.json}:
        C{{label: {bound id: [endpoint state, ...]}}}.
        """
        state: dict[str, Any] = {}
        for label, core in self._routerCores():
            clients: dict[str, Any] = {}
            for bound, client in core.clients():
                balancer = client
                while balancer is not None and not hasattr(balancer, "endpointStates"):
                    balancer = getattr(balancer, "client", None)
                if balancer is not None:
                    clients[bound.id.show] = balancer.endpointStates()
            state[label] = clients
        return state

    def reload(self, config: LinkerConfig) -> list[str]:
        """
        Apply what can change while running from a newly read
        configuration: each router's C{dtab}.  Everything else that differs
        is reported as needing a restart.

        @return: one line per change applied or left for a restart.
        """
        said: list[str] = []
        for key in sorted(set(config.source) | set(self.config.source)):
            if key != "routers" and config.source.get(key) != self.config.source.get(key):
                said.append(f"{key} changed: restart to apply")
        old = {r.label: r for r in self.routers}
        oldSources = dict(zip(old, self.config.source.get("routers") or [], strict=False))
        newSources = config.source.get("routers") or []
        for router, source in zip(config.routers, newSources, strict=False):
            runtime = old.get(router.label)
            if runtime is None:
                said.append(f"router {router.label} added: restart to apply")
                continue
            before = {k: v for k, v in oldSources.get(router.label, {}).items() if k != "dtab"}
            if {k: v for k, v in source.items() if k != "dtab"} != before:
                said.append(
                    f"router {router.label}: settings besides dtab changed: restart to apply"
                )
            core = getattr(runtime.service, "router", None)
            if core is not None and router.dtab != core.dtab:
                core.setDtab(router.dtab)
                said.append(f"router {router.label}: dtab is now {router.dtab.show or '(empty)'}")
        for label in set(old) - {r.label for r in config.routers}:
            said.append(f"router {label} removed: restart to apply")
        return said

    def shutdown(self, grace: float | None = None) -> None:
        """
        Stop the process gracefully, as SIGTERM does (C{POST
        /admin/shutdown}); C{grace} seconds, if given, replace
        C{admin.shutdownGraceMs} for this stop.
        """
        self._grace = grace
        log.info("shutdown requested")
        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass
