# -*- test-case-name: tests.test_client_balancer -*-
"""
The balancer: an L{IBalancer} over a changing set of endpoints, with
failure accrual, requeues and draining built in.

Per request: pick an endpoint, count it in flight, send, and on the answer
classify it, feed accrual (and the distributor's load metric), and requeue
it to another endpoint if it failed before anything was written and the
requeue budget allows.

Accrual states per endpoint: I{alive}; I{dead} until its backoff expires;
then ready for one I{probe} request whose success revives it and whose
failure kills it again for the next backoff.  Two limits beyond Linkerd:
at most C{maxEjectionPercent} of the endpoints are dead at once (at least
one may be), and when no endpoint can take a request, the one that failed
least recently is tried anyway rather than failing everything (its success
revives it; its failure leaves the backoff as it was).
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import attrs
from twisted.internet.defer import CancelledError, Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from linkrouter.config import RetryBudget as RetryBudgetValue
from linkrouter.interfaces import IBalancer, IBalancerFactory, IStatsReceiver, ResponseClass, Status
from linkrouter.logs import logObserver
from linkrouter.naming import ADDR_NEG, authority

from ._endpoint import ALIVE, DEAD, PROBE_READY, PROBING, STATE_NAMES, AddressLike, Endpoint
from .accrual import DEFAULT_ACCRUAL, AccrualFactory, AccrualPolicy
from .budget import RetryBudget
from .distributors import Distributor
from .errors import NoEndpointsAvailable, isRequeueable

log = Logger(observer=logObserver)

Classifier = Callable[[object, object, "Failure | None"], ResponseClass]
"""C{(request, response, failure) -> ResponseClass}."""

_SUCCESS = ResponseClass.SUCCESS
_OPEN = Status.OPEN

MAX_REQUEUES_PER_REQUEST = 25
"""A bound independent of the budget, so one request cannot loop."""


class _DestinationClassifier:
    """
    The response classifier of the destination whose request the router
    core is handing to a client right now (C{None}: the client's own).  The
    router sets it just before it calls the client; a L{Balancer} takes it
    as the call begins and classifies that request's outcome with it, for
    failure accrual and the client's metrics, as Linkerd carries a
    service's classifier to its clients with each request.
    """

    __slots__ = ("classify",)

    def __init__(self) -> None:
        self.classify: Classifier | None = None


destinationClassifier = _DestinationClassifier()


def classifyFailures(request: object, response: object, failure: Failure | None) -> ResponseClass:
    """The default classifier: a response succeeded, a failure failed."""
    if failure is None:
        return ResponseClass.SUCCESS
    return ResponseClass.NON_RETRYABLE_FAILURE


class RequestRecorder(Protocol):
    """
    The request metrics of the client's scope
    (L{linkrouter.routing.stats.RequestStats}), recorded by the balancer
    itself: one completion callback per request instead of two.
    """

    pending: int

    def begin(self) -> float: ...

    def end(
        self,
        start: float,
        request: Any,
        response: Any,
        failure: Failure | None,
        success: bool | None = None,
    ) -> None: ...

    def close(self) -> None: ...


class _Closable(Protocol):
    def close(self) -> object: ...


class VarLike(Protocol):
    """What the balancer uses of a L{linkrouter.naming.Var}."""

    def observe(self, callback: Callable[[Any], object]) -> _Closable: ...


@attrs.frozen
class ClientPolicy:
    """
    Client-wide behaviour the router passes to L{BalancerFactory.build}:
    failure accrual (a per-endpoint policy maker such as an
    L{AccrualFactory}, whose C{maxEjectionPercent} applies; C{None} for the
    default five consecutive failures), the response classifier, the
    requeue budget and C{failFast} (a connection failure marks the endpoint
    dead at once).  Requests that arrive before the bound name's addresses
    are first known wait for them for up to C{resolutionTimeout} seconds
    (the router's C{bindingTimeoutMs}).

    With C{requestStats}, the balancer records each request's outcome there
    once (after any requeues; it also exports that recorder's C{pending}
    rather than its own), with the verdict of C{classify} when it has one:
    the recorder must classify the same way.  C{annotate}, if given, is called with each
    request first (C{l5d-dst-client}).
    """

    accrual: Callable[[], AccrualPolicy] | None = None
    classify: Classifier = classifyFailures
    requeueBudget: RetryBudgetValue = attrs.field(factory=RetryBudgetValue)
    failFast: bool = False
    resolutionTimeout: float = 10.0
    requestStats: RequestRecorder | None = None
    annotate: Callable[[Any], object] | None = None


def _lastFailure(ep: Endpoint) -> float:
    return ep.lastFailure


def _addressesOf(addr: object) -> Iterable[AddressLike] | None:
    """
    The addresses of an L{linkrouter.naming.Addr}: a set for C{AddrBound},
    empty for C{ADDR_NEG}, C{None} (keep what we have) while pending or
    failed.
    """
    if addr is ADDR_NEG:
        return ()
    addresses: Iterable[AddressLike] | None = getattr(addr, "addresses", None)
    return addresses


@implementer(IBalancer)
class Balancer:
    def __init__(
        self,
        endpoints: VarLike,
        connect: Callable[[Any], Any],
        stats: IStatsReceiver,
        distributor: Distributor,
        *,
        clock: IReactorTime,
        rng: _random.Random,
        policy: ClientPolicy = ClientPolicy(),
        enableProbation: bool = False,
    ) -> None:
        self._connect = connect
        self._dist = distributor
        self._tracks = distributor.tracksLoad
        self._clock = clock
        self._rng = rng
        self._classify = policy.classify
        self._accrual = policy.accrual or AccrualFactory(DEFAULT_ACCRUAL, clock, rng)
        self._maxEjectionPercent: int = getattr(
            self._accrual, "maxEjectionPercent", DEFAULT_ACCRUAL.maxEjectionPercent
        )
        self._failFast = policy.failFast
        self._budget = RetryBudget.fromConfig(policy.requeueBudget, clock)
        self._probation = enableProbation
        self._byKey: dict[tuple[str, int], Endpoint] = {}
        self._eps: list[Endpoint] = []
        self._draining: dict[Endpoint, None] = {}
        self._dead = 0
        self._pending = 0
        self._closed = False
        self._whenClosed: list[Deferred[None]] = []
        self._resolved = False
        self._resolutionTimeout = policy.resolutionTimeout
        self._waiting: list[tuple[Deferred[Any], object, float, Classifier]] = []
        self._recorder = policy.requestStats
        self._annotate = policy.annotate
        self._waitTimer: IDelayedCall | None = None

        lb = stats.scope("loadbalancer")
        fa = stats.scope("failure_accrual")
        rq = stats.scope("retries")
        self._adds = lb.counter("adds")
        self._removes = lb.counter("removes")
        self._updates = lb.counter("updates")
        self._maxEffortExhausted = lb.counter("max_effort_exhausted")
        self._removals = fa.counter("removals")
        self._revivals = fa.counter("revivals")
        self._probes = fa.counter("probes")
        self._removedForMs = fa.counter("removed_for_ms")
        self._limited = fa.counter("removals_limited")
        self._requeues = rq.counter("requeues")
        self._budgetExhausted = rq.counter("budget_exhausted")
        self._gauges = [
            lb.addGauge(("size",), lambda: float(len(self._eps))),
            lb.addGauge(("available",), lambda: float(self._countAvailable())),
            lb.addGauge(("busy",), lambda: float(len(self._eps) - self._countAvailable())),
            lb.addGauge(("load",), lambda: float(self._pending)),
            lb.addGauge(("meanweight",), self._meanWeight),
            rq.addGauge(("budget",), lambda: float(self._budget.balance)),
            stats.addGauge(("pool_size",), lambda: self._poolSum("size")),
            stats.addGauge(("pool_waiters",), lambda: self._poolSum("waiters")),
        ]
        if self._recorder is None:
            self._gauges.append(stats.addGauge(("pending",), lambda: float(self._pending)))
        self._observation = endpoints.observe(self._update)

    # -- IClient

    @property
    def status(self) -> Status:
        if self._closed:
            return Status.CLOSED
        return Status.OPEN if self._countAvailable(stopAtOne=True) else Status.BUSY

    def __call__(self, request: object) -> Deferred[Any]:
        classify = destinationClassifier.classify
        if classify is None:
            classify = self._classify
        else:
            destinationClassifier.classify = None
        if self._annotate is not None:
            self._annotate(request)
        recorder = self._recorder
        if recorder is not None:
            begun = recorder.begin()
            self._budget.deposit(begun)
        else:
            begun = 0.0
            self._budget.deposit()
        if not self._resolved and not self._closed:
            return self._wait(request, begun, classify)
        return self._dispatch(request, 0, None, begun, classify)

    def _end(self, request: object, begun: float, error: Exception) -> Failure:
        """A request failed without reaching an endpoint: record it."""
        failure = Failure(error)
        if self._recorder is not None:
            self._recorder.end(begun, request, None, failure)
        return failure

    # -- waiting for the first addresses

    def _wait(self, request: object, begun: float, classify: Classifier) -> Deferred[Any]:
        """
        Hold C{request} until the bound name's addresses are first known
        (a host name being resolved, a namer still reading its source).
        """

        def cancel(d: Deferred[Any]) -> None:
            for index, (waiter, _, _, _) in enumerate(self._waiting):
                if waiter is d:
                    del self._waiting[index]
                    d.errback(self._end(request, begun, CancelledError()))
                    return

        d: Deferred[Any] = Deferred(cancel)
        self._waiting.append((d, request, begun, classify))
        if self._waitTimer is None:
            self._waitTimer = self._clock.callLater(self._resolutionTimeout, self._giveUp)
        return d

    def _giveUp(self) -> None:
        self._waitTimer = None
        self._release(
            NoEndpointsAvailable(f"addresses still unknown after {self._resolutionTimeout:g}s")
        )

    def _release(self, error: Exception | None = None) -> None:
        if self._waitTimer is not None:
            self._waitTimer.cancel()
            self._waitTimer = None
        waiting, self._waiting = self._waiting, []
        for d, request, begun, classify in waiting:
            if error is not None:
                d.errback(self._end(request, begun, error))
            else:
                self._dispatch(request, 0, None, begun, classify).chainDeferred(d)

    def _dispatch(
        self,
        request: object,
        requeues: int,
        avoid: Endpoint | None,
        begun: float,
        classify: Classifier,
    ) -> Deferred[Any]:
        ep = self._dist.pick(avoid)
        if ep is None:
            ep = self._fallback(avoid)
            if ep is None:
                return fail(
                    self._end(
                        request,
                        begun,
                        NoEndpointsAvailable("client closed" if self._closed else "no endpoints"),
                    )
                )
        # Only an endpoint whose backoff has run out gets the one probe; a dead
        # one tried because nothing else could be (the fallback) is revived
        # by a success but not killed again, nor logged, by a failure.
        probe = ep.state == PROBE_READY
        if probe:
            self._startProbe(ep)
        ep.pending += 1
        self._pending += 1
        if self._tracks:
            start = self._clock.seconds()
            self._dist.started(ep, start)
        else:
            start = 0.0
        try:
            d: Deferred[Any] = ep.client(request)
        except Exception:
            d = fail()
        d.addBoth(self._finished, ep, request, start, requeues, probe, begun, classify)
        return d

    def _finished(
        self,
        result: object,
        ep: Endpoint,
        request: object,
        start: float,
        requeues: int,
        probe: bool,
        begun: float,
        classify: Classifier,
    ) -> object:
        ep.pending -= 1
        self._pending -= 1
        if isinstance(result, Failure):
            failure: Failure | None = result
            response = None
        else:
            failure = None
            response = result
        if self._tracks:
            self._dist.finished(ep, start, failure is not None)
        success: bool | None = None
        if not ep.draining and (failure is None or not failure.check(CancelledError)):
            try:
                success = classify(request, response, failure) is _SUCCESS
            except Exception:
                log.failure("Response classifier failed; counting the request as failed")
                success = failure is None
            if success:
                if ep.state == ALIVE:
                    ep.policy.recordSuccess()
                else:
                    self._revive(ep)
            else:
                self._failed(ep, failure, probe)
        if ep.draining and ep.pending == 0:
            self._closeEndpoint(ep)
        if failure is not None and not self._closed and isRequeueable(failure):
            if requeues < MAX_REQUEUES_PER_REQUEST and self._budget.tryWithdraw():
                self._requeues.incr()
                return self._dispatch(request, requeues + 1, ep, begun, classify)
            self._budgetExhausted.incr()
        if self._recorder is not None:
            self._recorder.end(begun, request, response, failure, success)
        return result

    def close(self) -> Deferred[None]:
        if not self._closed:
            self._closed = True
            self._release(NoEndpointsAvailable("client closed"))
            self._observation.close()
            for gauge in self._gauges:
                gauge.remove()
            if self._recorder is not None:
                self._recorder.close()
            eps, self._eps, self._byKey = self._eps, [], {}
            self._dist.rebuild([])
            for ep in eps:
                self._drain(ep)
        d: Deferred[None] = Deferred()
        if self._draining:
            self._whenClosed.append(d)
        else:
            d.callback(None)
        return d

    # -- picking

    def _fallback(self, avoid: Endpoint | None) -> Endpoint | None:
        """
        Nothing usable within C{maxEffort} picks: scan every endpoint.
        Prefer one that can take a request, then a live one whose client is
        busy (it will queue), then the one that failed least recently.
        """
        eps = self._eps
        if not eps:
            return None
        self._maxEffortExhausted.incr()
        best: Endpoint | None = None
        busy: Endpoint | None = None
        for ep in eps:
            if ep.alive and ep.client.status is _OPEN:
                if ep is not avoid:
                    return ep
                best = ep
            elif (
                ep.state == ALIVE
                and ep.client.status is not Status.CLOSED
                and (busy is None or ep.pending < busy.pending)
            ):
                busy = ep
        if best is not None or busy is not None:
            return best or busy
        dead = [ep for ep in eps if ep.state != ALIVE and ep.client.status is not Status.CLOSED]
        if not dead:
            return None
        return min(dead, key=lambda ep: ep.lastFailure)

    def _countAvailable(self, stopAtOne: bool = False) -> int:
        count = 0
        for ep in self._eps:
            if ep.alive and ep.client.status is _OPEN:
                count += 1
                if stopAtOne:
                    break
        return count

    def _poolSum(self, name: str) -> float:
        """
        The sum over the endpoints' connection pools of C{size} (connections
        open) or C{waiters} (requests queued), for pools that say.
        """
        return float(sum(getattr(ep.client, name, 0) for ep in self._eps))

    def _meanWeight(self) -> float:
        eps = self._eps
        return sum(ep.weight for ep in eps) / len(eps) if eps else 0.0

    # -- failure accrual

    def _failed(self, ep: Endpoint, failure: Failure | None, probe: bool) -> None:
        state = ep.state
        if state == ALIVE:
            eject = ep.policy.recordFailure() or (
                self._failFast and failure is not None and isRequeueable(failure)
            )
            if eject:
                self._markDead(ep)
            if ep.probation:
                self._drain(ep)
                self._removeFromSet(ep)
        elif probe:
            ep.lastFailure = self._clock.seconds()
            self._kill(ep, ep.lastFailure)

    def _ejectionLimit(self) -> int:
        percent = self._maxEjectionPercent
        if percent <= 0:
            return 0
        return max(1, len(self._eps) * percent // 100)

    def _markDead(self, ep: Endpoint) -> None:
        if self._dead >= self._ejectionLimit():
            self._limited.incr()
            return
        now = self._clock.seconds()
        self._dead += 1
        self._removals.incr()
        ep.deadSince = ep.lastFailure = now
        self._kill(ep, now)

    def _kill(self, ep: Endpoint, now: float) -> None:
        """Enter (or re-enter, after a failed probe) the dead state."""
        delay = ep.policy.nextBackoff()
        ep.state = DEAD
        ep.alive = False
        ep.deadUntil = now + delay
        if ep.timer is not None and ep.timer.active():
            ep.timer.cancel()
        ep.timer = self._clock.callLater(delay, self._probeReady, ep)
        log.info(
            "Marked {endpoint} dead for {delay:.3f}s", endpoint=authority(*ep.key), delay=delay
        )

    def _probeReady(self, ep: Endpoint) -> None:
        ep.timer = None
        if ep.state == DEAD:
            ep.state = PROBE_READY
            ep.alive = True

    def _startProbe(self, ep: Endpoint) -> None:
        self._probes.incr()
        ep.state = PROBING
        ep.alive = False

    def _revive(self, ep: Endpoint) -> None:
        now = self._clock.seconds()
        if ep.timer is not None and ep.timer.active():
            ep.timer.cancel()
        ep.timer = None
        ep.state = ALIVE
        ep.alive = True
        ep.policy.revived()
        self._dead -= 1
        self._revivals.incr()
        self._removedForMs.incr(int((now - ep.deadSince) * 1000))
        log.info("Revived {endpoint}", endpoint=authority(*ep.key))

    # -- endpoint set

    def _update(self, addr: object) -> None:
        if self._closed:
            return
        addresses = _addressesOf(addr)
        if addresses is None:
            reason = getattr(addr, "reason", None)
            if reason is not None and not self._resolved:
                self._release(NoEndpointsAvailable(f"resolution failed: {reason}"))
            return
        wanted: dict[tuple[str, int], AddressLike] = {}
        for address in addresses:
            if address.weight > 0:
                wanted[(address.host, address.port)] = address
        for key, ep in list(self._byKey.items()):
            if key in wanted:
                continue
            if self._probation and ep.state == ALIVE and ep.client.status is _OPEN:
                ep.probation = True
            else:
                self._drain(ep)
                del self._byKey[key]
        for key, address in sorted(wanted.items()):
            existing = self._byKey.get(key)
            if existing is None:
                try:
                    client = self._connect(address)
                except Exception:
                    log.failure("Could not create a client for {address}", address=address)
                    continue
                self._byKey[key] = Endpoint(address, client, self._accrual(), self._rng.random())
                self._adds.incr()
            else:
                existing.probation = False
                if existing.address != address:
                    existing.address = address
                    existing.weight = float(address.weight)
        self._updates.incr()
        self._rebuild()
        if not self._resolved:
            self._resolved = True
            self._release()

    def _rebuild(self) -> None:
        # In address order, so that a seeded balancer behaves the same in
        # every process whatever the hash seed.
        self._eps = sorted(self._byKey.values(), key=lambda ep: ep.key)
        # A smaller set lowers the ejection limit: revive the endpoints that
        # failed longest ago until the dead are within it again.
        while self._eps and self._dead > self._ejectionLimit():
            self._revive(min((ep for ep in self._eps if ep.state != ALIVE), key=_lastFailure))
        self._dist.rebuild(self._eps)

    def _removeFromSet(self, ep: Endpoint) -> None:
        if self._byKey.get(ep.key) is ep:
            del self._byKey[ep.key]
            self._rebuild()

    def _drain(self, ep: Endpoint) -> None:
        """Take C{ep} out of rotation; close it once nothing is in flight."""
        if ep.draining:
            return
        ep.draining = True
        self._removes.incr()
        if ep.state != ALIVE:
            self._dead -= 1
        if ep.timer is not None and ep.timer.active():
            ep.timer.cancel()
        ep.timer = None
        self._draining[ep] = None
        if ep.pending == 0:
            self._closeEndpoint(ep)

    def _closeEndpoint(self, ep: Endpoint) -> None:
        maybeDeferred(ep.client.close).addErrback(
            lambda f: log.failure("Closing {key} failed", f, key=ep.key)
        ).addBoth(lambda _: self._closedEndpoint(ep))

    def _closedEndpoint(self, ep: Endpoint) -> None:
        self._draining.pop(ep, None)
        if not self._draining and self._whenClosed:
            waiters, self._whenClosed = self._whenClosed, []
            for d in waiters:
                d.callback(None)

    # -- introspection

    def endpointStates(self) -> list[dict[str, Any]]:
        """
        Each endpoint for C{/client_state.json}: address, weight, load
        (requests in flight), accrual state and, when dead, until when (ms
        since the epoch of the clock).
        """
        result = []
        for ep, draining in [(ep, False) for ep in self._eps] + [
            (ep, True) for ep in self._draining
        ]:
            entry: dict[str, Any] = {
                "address": authority(*ep.key),
                "weight": ep.weight,
                "load": ep.pending,
                "state": "draining" if draining else STATE_NAMES[ep.state],
                "status": getattr(ep.client.status, "value", str(ep.client.status)),
            }
            if ep.state == DEAD:
                entry["deadUntilMs"] = int(ep.deadUntil * 1000)
            if ep.probation:
                entry["probation"] = True
            entry.update(self._dist.describe(ep))
            result.append(entry)
        return result


@implementer(IBalancerFactory)
@attrs.frozen
class BalancerFactory:
    """
    Builds balancers of one kind.  C{makeDistributor(rng, clock)} makes the
    pick strategy for each new balancer.
    """

    makeDistributor: Callable[[_random.Random, IReactorTime], Distributor]
    clock: IReactorTime
    enableProbation: bool = False
    rng: _random.Random = attrs.field(factory=_random.Random)

    def build(
        self,
        endpoints: object,
        connect: object,
        stats: IStatsReceiver,
        policy: ClientPolicy | None = None,
    ) -> Balancer:
        assert callable(connect)
        return Balancer(
            endpoints,  # type: ignore[arg-type]
            connect,
            stats,
            self.makeDistributor(self.rng, self.clock),
            clock=self.clock,
            rng=self.rng,
            policy=policy or ClientPolicy(),
            enableProbation=self.enableProbation,
        )


__all__ = [
    "Balancer",
    "BalancerFactory",
    "Classifier",
    "ClientPolicy",
    "RequestRecorder",
    "classifyFailures",
]
