# -*- test-case-name: tests.test_routing_assembly -*-
"""
From a parsed router configuration and a protocol's L{ProtocolHooks} to a
working L{Router}: the client for each bound name (balancer, failure
accrual, requeues, attempt timeout, stats) and the service for each
destination (classifier, retries, total timeout, deadline, stats).

Every protocol builds its router this way, so that the client stack and the
service policy are the same for HTTP, Thrift and whatever a plugin adds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.python.failure import Failure
from zope.interface import implementer

from linkrouter.client.balancer import Balancer, ClientPolicy
from linkrouter.client.timeout import AttemptTimeout
from linkrouter.config import ClientParams, PluginConfig, RouterConfig
from linkrouter.context import BuildContext
from linkrouter.interfaces import IClient, IResponseClassifier, ResponseClass
from linkrouter.naming import Address, Bound, Path
from linkrouter.policy.config import retryingClient
from linkrouter.policy.retries import RetryingClient
from linkrouter.policy.timeouts import Deadline

from .router import Router
from .stats import ConnectionStats, RequestStats, StatsClient, StatusOf


def _always(request: Any) -> bool:
    return True


def _nothing(*args: Any) -> None:
    return None


def _noAnnotator(name: object) -> None:
    return None


@attrs.frozen
class ProtocolHooks:
    """
    What the router core needs from a protocol.

    @ivar connect: the client for one endpoint (a connection pool), given
        the client parameters that apply to its bound name.  A pool that
        has a C{countConnections} method is given, through it and before
        its first request, the L{ConnectionStats} of its client (shared by
        all the client's pools); it calls that object's C{connected} and
        C{closed} as its connections are established and closed, for the
        client's C{connects}, C{closes} and C{connections} metrics.  A pool
        without the method is not counted.
    @ivar statusOf: a response's status code, for C{status/<code>} metrics;
        C{None} for a protocol without status codes.
    @ivar mayResend: whether a request can be sent again (its body is
        buffered), for retries.
    @ivar deadlineOf: the deadline a request carries (C{l5d-ctx-deadline}).
    @ivar stampDeadline: write the outgoing deadline on a request.
    @ivar discard: release a response that a retry replaces.
    @ivar serviceAnnotator: given a destination, the function (or C{None})
        that marks each request to it (C{l5d-dst-service}); called once per
        destination, so that per-request work stays small.
    @ivar clientAnnotator: given a bound name, the function (or C{None})
        that marks each request sent to it (C{l5d-dst-client},
        C{l5d-dst-residual}); called once per bound name.
    """

    connect: Callable[[Address, ClientParams], IClient]
    statusOf: StatusOf | None = None
    mayResend: Callable[[Any], bool] = _always
    deadlineOf: Callable[[Any], Deadline | None] = _nothing
    stampDeadline: Callable[[Any, Deadline], object] = _nothing
    discard: Callable[[Any], object] = _nothing
    serviceAnnotator: Callable[[Path], Callable[[Any], object] | None] = _noAnnotator
    clientAnnotator: Callable[[Bound], Callable[[Any], object] | None] = _noAnnotator


def _scopeName(path: Path) -> str:
    return path.show[1:] if len(path) else ""


def _build(plugin: PluginConfig, context: BuildContext) -> Any:
    return plugin.plugin.build(plugin.config, context)


class _Classify:
    """A response classifier as the balancer's failure accrual uses it."""

    def __init__(self, classifier: IResponseClassifier) -> None:
        self._classifier = classifier

    def __call__(self, request: object, response: object, failure: Failure | None) -> ResponseClass:
        verdict = self._classifier.classify(request, response, failure)
        if isinstance(verdict, ResponseClass):
            return verdict
        return ResponseClass.SUCCESS if failure is None else ResponseClass.NON_RETRYABLE_FAILURE


def buildRouter(config: RouterConfig, context: BuildContext, hooks: ProtocolHooks) -> Router:
    """
    The router core for C{config}, with C{context.interpreter} binding and
    metrics under C{context.stats} (the router's C{rt/<label>} scope).
    """
    assert context.interpreter is not None, "the service builds the interpreter first"
    clock = context.reactor
    stats = context.stats
    built: list[tuple[PluginConfig, IResponseClassifier]] = []

    def classifierFor(plugin: PluginConfig | None) -> IResponseClassifier | None:
        # One (memoised) classifier per distinct configuration, so that the
        # layers of one request share its verdict instead of recomputing it.
        if plugin is None:
            return None
        for known, classifier in built:
            if known == plugin:
                return classifier
        classifier = _Memo(_build(plugin, context))
        built.append((plugin, classifier))
        return classifier

    routerClassifier = classifierFor(config.service.forPath(Path()).responseClassifier)
    # The connection metrics of each client scope, shared by the clients of
    # one name (bound names that differ only in their residual) and by
    # their endpoints' pools, until the name is evicted.
    connectionStats: dict[str, ConnectionStats] = {}

    def newClient(bound: Bound) -> IClient:
        params = config.client.forPath(bound.id)
        name = _scopeName(bound.id)
        scope = stats.scope("client", name)
        timeoutMs = params.requestAttemptTimeoutMs
        connections = connectionStats.get(name)
        if connections is None:
            connections = connectionStats[name] = ConnectionStats(stats=scope)

        def connect(address: Any) -> IClient:
            endpoint = hooks.connect(address, params)
            countConnections = getattr(endpoint, "countConnections", None)
            if countConnections is not None:
                countConnections(connections)
            if timeoutMs:
                return AttemptTimeout(endpoint, timeoutMs / 1000.0, clock)
            return endpoint

        # The balancer records the client's request metrics itself, in the
        # callback it has anyway.
        requestStats = RequestStats(scope, routerClassifier, clock, hooks.statusOf)
        annotate = hooks.clientAnnotator(bound)
        policy = ClientPolicy(
            accrual=_build(params.failureAccrual, context) if params.failureAccrual else None,
            requeueBudget=params.requeueBudget or ClientPolicy().requeueBudget,
            failFast=bool(params.failFast),
            resolutionTimeout=config.bindingTimeoutMs / 1000.0,
            requestStats=requestStats,
            annotate=annotate,
            **({"classify": _Classify(routerClassifier)} if routerClassifier is not None else {}),
        )
        assert params.loadBalancer is not None, "p2c is the configured default"
        balancer = _build(params.loadBalancer, context).build(bound.addr, connect, scope, policy)
        if isinstance(balancer, Balancer):
            return balancer
        return StatsClient(balancer, requestStats, annotate)

    def newService(dst: Path, dispatch: IClient) -> IClient:
        params = config.service.forPath(dst)
        scope = stats.scope("service", _scopeName(dst))
        classifier = classifierFor(params.responseClassifier) or routerClassifier
        retrying: RetryingClient[Any] = retryingClient(
            dispatch,
            params,
            classifier or _NoOpinion(),
            clock,
            scope,
            mayResend=hooks.mayResend,
            stampDeadline=hooks.stampDeadline,
            discard=hooks.discard,
        )
        # The retry filter records the service's request metrics in its own
        # callback.
        retrying.record(
            RequestStats(scope, classifier, clock, hooks.statusOf),
            hooks.serviceAnnotator(dst),
            hooks.deadlineOf,
        )
        return retrying

    def evict(kind: str, name: str) -> None:
        # The scope newService or newClient recorded under (name is a path's show).
        if kind == "client":
            connectionStats.pop(name[1:], None)
        close = getattr(stats.scope(kind, name[1:]), "close", None)
        if close is not None:
            close()

    def classifierOf(dst: Path) -> _Classify | None:
        # Only a destination whose classifier is not the router's needs to
        # hand its own to the clients.
        own = classifierFor(config.service.forPath(dst).responseClassifier)
        return None if own is None or own is routerClassifier else _Classify(own)

    router = Router(
        config.label,
        config.dtab,
        context.interpreter,
        newClient,
        newService,
        clock,
        bindingTimeout=config.bindingTimeoutMs / 1000.0,
        idleTtl=float(config.bindingCache.idleTtlSecs),
        maxServices=config.bindingCache.paths,
        maxClients=config.bindingCache.clients,
        classifierOf=classifierOf,
        stats=stats,
        onEvict=evict,
        classifier=routerClassifier,
    )
    return router


@implementer(IResponseClassifier)
class _Memo:
    """
    A classifier that remembers its last verdict: the stats, retry and
    failure-accrual layers all classify the same outcome of a request.
    """

    __slots__ = ("_answer", "_classifier", "_failure", "_request", "_response")

    def __init__(self, classifier: IResponseClassifier) -> None:
        self._classifier = classifier
        self._request: object = None
        self._response: object = None
        self._failure: object = None
        self._answer: object = None

    def classify(self, request: object, response: object, failure: object) -> object:
        if (
            request is self._request
            and response is self._response
            and failure is self._failure
            and request is not None
        ):
            return self._answer
        answer = self._classifier.classify(request, response, failure)
        self._request = request
        self._response = response
        self._failure = failure
        self._answer = answer
        return answer


@implementer(IResponseClassifier)
class _NoOpinion:
    def classify(self, request: object, response: object, failure: object) -> None:
        return None
