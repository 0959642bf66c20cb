# -*- test-case-name: tests.test_routing_router -*-
"""
The protocol-neutral router core.

A protocol identifies a request (L{Identified}) and calls L{Router.route}.
The router keeps one L{_Service} per destination (path and per-request
dtab): it binds the path once through the interpreter, watches the bound
tree, and keeps a ready L{_Picker} so that steady traffic does no dtab work.
Each bound name gets one client (a balancer over the name's addresses),
shared by every service whose tree contains it.  Services and clients that
have been idle for C{idleTtlSecs} are evicted, which releases their namer
watches, connections and metrics.  Both caches are also bounded in size
(C{bindingCache.paths} destinations, C{bindingCache.clients} clients): a
miss in a full cache first evicts the tenth of it that was used least
recently (for clients, only those no destination uses), as Finagle's
service cache evicts the entry idle longest.  An evicted destination is
retired, so that its requests in flight finish where they were going.
Metrics are removed with the last destination or client of their name: a
per-request dtab makes a destination of its own under the same name.

When a namer's answer changes, the picker is rebuilt at once: new requests
use the new tree and requests in flight finish on the clients they had.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from linkrouter.client.balancer import Classifier, destinationClassifier
from linkrouter.interfaces import (
    IClient,
    IDelegator,
    IInterpreter,
    IResponseClassifier,
    IStatsReceiver,
    Status,
)
from linkrouter.logs import logObserver
from linkrouter.naming import (
    EMPTY,
    FAIL,
    NEG,
    Activity,
    Bound,
    Closable,
    Dtab,
    Failed,
    Leaf,
    NameTree,
    Ok,
    Path,
    State,
    Union,
    delegateJson,
)
from linkrouter.telemetry.stats import NullStatsReceiver

from .errors import BindingFailed, BindingTimeout, NoHostsAvailable, RouterClosed, RoutingError
from .explain import explainDelegation
from .identification import Identified

NewClient = Callable[[Bound], IClient]
"""Builds the client (a balancer) for one bound name."""

NewService = Callable[[Path, IClient], IClient]
"""Wraps a destination's dispatcher with service policy and stats."""

ClassifierOf = Callable[[Path], "Classifier | None"]
"""
A destination's own response classifier for its clients (failure accrual
and client metrics), or C{None} where the clients' own one applies.
"""

log = Logger(observer=logObserver)


class _ClientEntry:
    __slots__ = ("bound", "client", "idleSince", "refs")

    def __init__(self, bound: Bound, client: IClient, now: float) -> None:
        self.bound = bound
        self.client = client
        self.refs = 0
        self.idleSince = now


class _Picker:
    """
    Chooses a client for one request from a bound tree: a single client, a
    weighted choice between sub-pickers (dtab unions), or an error.
    """

    __slots__ = ("_choices", "_cumulative", "_entry", "_error", "_total")

    def __init__(
        self,
        entry: _ClientEntry | None = None,
        error: RoutingError | None = None,
        choices: list[tuple[float, _Picker]] | None = None,
    ) -> None:
        self._entry = entry
        self._error = error
        self._choices: list[_Picker] = []
        self._cumulative: list[float] = []
        self._total = 0.0
        for weight, picker in choices or ():
            self._total += weight
            self._cumulative.append(self._total)
            self._choices.append(picker)

    def pick(self, rng: Callable[[], float]) -> _ClientEntry | RoutingError:
        picker = self
        while picker._choices:
            index = bisect.bisect_right(picker._cumulative, rng() * picker._total)
            picker = picker._choices[min(index, len(picker._choices) - 1)]
        if picker._entry is not None:
            return picker._entry
        assert picker._error is not None
        return picker._error

    @property
    def isError(self) -> bool:
        return self._entry is None and not self._choices


@implementer(IClient)
class _Service:
    """
    One destination: its binding, its current picker, and the policy-wrapped
    client that requests go through.
    """

    def __init__(self, router: Router, dst: Path, localDtab: Dtab) -> None:
        self.router = router
        self.dst = dst
        self.dtab = router.dtab + localDtab if len(localDtab) else router.dtab
        self.lastUsed = router.clock.seconds()
        self.status = Status.OPEN
        self.classify = router.classifierOf(dst)
        self._picker: _Picker | None = None
        self._bindError: RoutingError | None = None
        self._entries: list[_ClientEntry] = []
        self._waiters: list[tuple[Deferred[Any], object, IDelayedCall]] = []
        self.client: IClient = router.newService(dst, self)
        activity: Activity[NameTree[Bound]] = router.interpreter.bind(self.dtab, dst)
        self._observation: Closable | None = None
        self._observation = activity.observe(self._onState)

    # IClient: the dispatcher that the service policy wraps.
    def __call__(self, request: object) -> Deferred[Any]:
        picker = self._picker
        if picker is not None:
            choice = picker.pick(self.router.random)
            if isinstance(choice, _ClientEntry):
                destinationClassifier.classify = self.classify
                return choice.client(request)
            return self._failWith(choice)
        if self._bindError is not None:
            return fail(self._bindError)
        return self._wait(request)

    def close(self) -> Deferred[None]:
        # The policy-wrapped client ends in this dispatcher, so closing it
        # comes back here: the second call has nothing left to do.
        if self.status is Status.CLOSED:
            return succeed(None)
        self.status = Status.CLOSED
        if self._observation is not None:
            self._observation.close()
            self._observation = None
        self._setEntries([])
        for d, _, timer in self._waiters:
            timer.cancel()
            d.errback(RouterClosed(f"router {self.router.label} is closing"))
        self._waiters = []
        self._picker = None
        if self.client is not self:
            return self.client.close().addCallback(lambda _: None)
        return succeed(None)

    def _wait(self, request: object) -> Deferred[Any]:
        def cancel(d: Deferred[Any]) -> None:
            for waiter in self._waiters:
                if waiter[0] is d:
                    waiter[2].cancel()
                    self._waiters.remove(waiter)
                    break

        d: Deferred[Any] = Deferred(cancel)
        timeout = self.router.bindingTimeout

        def expire() -> None:
            for waiter in self._waiters:
                if waiter[0] is d:
                    self._waiters.remove(waiter)
                    break
            d.errback(
                BindingTimeout(
                    f"binding {self.dst.show} timed out after {int(timeout * 1000)} ms",
                    f"dtab: {self.dtab.show}",
                )
            )

        timer = self.router.clock.callLater(timeout, expire)
        self._waiters.append((d, request, timer))
        return d

    def _failWith(self, error: RoutingError) -> Deferred[Any]:
        if isinstance(error, NoHostsAvailable) and not error.detail:
            return self.router.explain(self.dtab, self.dst).addCallback(
                lambda detail: Failure(NoHostsAvailable(error.message, detail))
            )
        return fail(error)

    def _onState(self, state: State[NameTree[Bound]]) -> None:
        if type(state) is Ok:
            self._bindError = None
            self._setPicker(state.value)
        elif type(state) is Failed:
            exc = state.exception
            message = exc.message if isinstance(exc, RoutingError) else str(exc)
            self._bindError = BindingFailed(
                f"binding {self.dst.show} failed: {message}", f"dtab: {self.dtab.show}"
            )
            self._picker = None
            self._setEntries([])
        else:
            return
        waiters, self._waiters = self._waiters, []
        for d, request, timer in waiters:
            timer.cancel()
            self(request).chainDeferred(d)

    def _setPicker(self, tree: NameTree[Bound]) -> None:
        entries: list[_ClientEntry] = []
        picker = self._build(tree, entries)
        self._setEntries(entries)
        self._picker = picker

    def _setEntries(self, entries: list[_ClientEntry]) -> None:
        """Use C{entries} (acquired already) from now on; release the old ones."""
        router = self.router
        for entry in self._entries:
            router.releaseClient(entry)
        self._entries = entries

    def _build(self, tree: NameTree[Bound], entries: list[_ClientEntry]) -> _Picker:
        if isinstance(tree, Leaf):
            entry = self.router.acquireClient(tree.value)
            entries.append(entry)
            return _Picker(entry=entry)
        if isinstance(tree, Union):
            built = [(w.weight, self._build(w.tree, entries)) for w in tree.trees]
            live = [(weight, p) for weight, p in built if not p.isError and weight > 0]
            if live:
                return live[0][1] if len(live) == 1 else _Picker(choices=live)
            return built[0][1] if built else self._negative()
        if tree is FAIL:
            return _Picker(
                error=BindingFailed(
                    f"binding {self.dst.show} failed: the dtab says ! (fail)",
                    f"dtab: {self.dtab.show}",
                )
            )
        if tree is NEG or tree is EMPTY:
            return self._negative()
        raise TypeError(f"unexpected node in a bound tree: {tree!r}")

    def _negative(self) -> _Picker:
        return _Picker(error=NoHostsAvailable(f"No hosts are available for {self.dst.show}"))


class Router:
    """
    Routes identified requests of one router (one C{routers[]} entry).

    @param newClient: builds the client for a bound name (typically a
        balancer over its addresses with the protocol's endpoint clients).
    @param newService: wraps a destination's dispatcher with service policy
        (classifier, retries, timeouts) and stats.
    @param idleTtl: seconds after which an unused destination or client is
        evicted.
    @param maxServices: how many destinations (path and per-request dtab)
        are kept at most (C{bindingCache.paths}).
    @param maxClients: how many clients are kept at most, unless more are
        in use (C{bindingCache.clients}).
    @param stats: the router's scope, for Linkerd's C{bindcache/path/...}
        (destinations) and C{bindcache/client/...} counters: C{misses}
        (entries made), C{evicts} (dropped to make room) and C{expires}
        (dropped when idle).
    @param classifierOf: a destination's own classifier for its clients,
        handed to them with each request (see
        L{linkrouter.client.balancer.destinationClassifier}).
    @param classifier: the router's response classifier, for protocols to
        count their servers' successes and failures the same way.
    """

    def __init__(
        self,
        label: str,
        dtab: Dtab,
        interpreter: IInterpreter,
        newClient: NewClient,
        newService: NewService,
        clock: IReactorTime,
        bindingTimeout: float = 10.0,
        idleTtl: float = 600.0,
        maxServices: int = 1000,
        maxClients: int = 1000,
        classifierOf: ClassifierOf = lambda dst: None,
        rng: Callable[[], float] = random.random,
        onEvict: Callable[[str, str], object] = lambda kind, name: None,
        classifier: IResponseClassifier | None = None,
        stats: IStatsReceiver | None = None,
    ) -> None:
        self.label = label
        cache = (stats or NullStatsReceiver()).scope("bindcache")
        self._counted = {
            (cache_, event): cache.counter(cache_, event).incr
            for cache_ in ("path", "client")
            for event in ("misses", "evicts", "expires")
        }
        self.classifier = classifier
        self.dtab = dtab
        self.interpreter = interpreter
        self.newClient = newClient
        self.newService = newService
        self.clock = clock
        self.bindingTimeout = bindingTimeout
        self.idleTtl = idleTtl
        self.maxServices = max(1, maxServices)
        self.maxClients = max(1, maxClients)
        self.classifierOf = classifierOf
        self.random = rng
        self._onEvict = onEvict
        self._services: dict[tuple[Path, Dtab], _Service] = {}
        self._retired: list[tuple[float, _Service]] = []
        self._clients: dict[Bound, _ClientEntry] = {}
        self._sweeper = LoopingCall(self.sweep)
        self._sweeper.clock = clock
        self._closed = False

    def start(self) -> None:
        """Start evicting idle destinations and clients."""
        if not self._sweeper.running:
            self._sweeper.start(max(1.0, min(60.0, self.idleTtl / 4)), now=False)

    def route(self, identified: Identified, request: object) -> Deferred[Any]:
        """
        Send C{request} to the destination C{identified} names; the Deferred
        fires with the response or fails with a L{RoutingError} or the
        client's own failure.
        """
        if self._closed:
            return fail(RouterClosed(f"router {self.label} is closing"))
        key = (identified.dst, identified.localDtab)
        service = self._services.get(key)
        if service is None:
            if len(self._services) >= self.maxServices:
                self._shedServices()
            self._counted["path", "misses"]()
            service = self._services[key] = _Service(self, identified.dst, identified.localDtab)
        service.lastUsed = self.clock.seconds()
        return service.client(request)

    def acquireClient(self, bound: Bound) -> _ClientEntry:
        """The client of C{bound}, counted as in use until L{releaseClient}."""
        entry = self._clients.get(bound)
        if entry is None:
            if len(self._clients) >= self.maxClients:
                self._shedClients()
            self._counted["client", "misses"]()
            entry = self._clients[bound] = _ClientEntry(
                bound, self.newClient(bound), self.clock.seconds()
            )
        entry.refs += 1
        return entry

    def releaseClient(self, entry: _ClientEntry) -> None:
        entry.refs -= 1
        if entry.refs == 0:
            entry.idleSince = self.clock.seconds()

    def setDtab(self, dtab: Dtab) -> None:
        """
        Route with C{dtab} from now on (a configuration reload).  New
        requests bind afresh; destinations bound with the old dtab keep
        serving the requests they have until the sweep after next closes
        them.
        """
        if dtab == self.dtab:
            return
        self.dtab = dtab
        now = self.clock.seconds()
        self._retired.extend((now, service) for service in self._services.values())
        self._services = {}

    def sweep(self) -> None:
        """Evict destinations and clients idle for longer than C{idleTtl}."""
        now = self.clock.seconds()
        cutoff = now - self.idleTtl
        interval = self._sweeper.interval or 0.0
        keep = []
        for retiredAt, service in self._retired:
            if retiredAt <= now - interval:
                service.close()
            else:
                keep.append((retiredAt, service))
        self._retired = keep
        idle = [key for key, service in self._services.items() if service.lastUsed <= cutoff]
        for service in self._evictServices(idle, "expires"):
            service.close()
        unused = [
            bound
            for bound, entry in self._clients.items()
            if entry.refs <= 0 and entry.idleSince <= cutoff
        ]
        self._evictClients(unused, "expires")

    def _evictServices(self, keys: Iterable[tuple[Path, Dtab]], why: str) -> list[_Service]:
        """
        Forget these destinations, counted under C{why} (C{evicts} or
        C{expires}); the metrics of a name go unless a destination left
        keeps it.
        """
        evicted = [self._services.pop(key) for key in keys]
        if evicted:
            self._counted["path", why](len(evicted))
            kept = {service.dst for service in self._services.values()}
            for dst in dict.fromkeys(service.dst for service in evicted):
                if dst not in kept:
                    self._onEvict("service", dst.show)
        return evicted

    def _evictClients(self, bounds: Iterable[Bound], why: str) -> None:
        """
        Close these unused clients, counted under C{why}; the metrics of a
        name go unless a client left keeps it.
        """
        evicted = [self._clients.pop(bound) for bound in bounds]
        for entry in evicted:
            entry.client.close()
        if evicted:
            self._counted["client", why](len(evicted))
            kept = {bound.id for bound in self._clients}
            for name in dict.fromkeys(entry.bound.id for entry in evicted):
                if name not in kept:
                    self._onEvict("client", name.show)

    def _shedServices(self) -> None:
        """Make room: retire the tenth of the destinations used least recently."""
        count = max(1, self.maxServices // 10)
        oldest = heapq.nsmallest(count, self._services.items(), key=lambda kv: kv[1].lastUsed)
        now = self.clock.seconds()
        for service in self._evictServices((key for key, _ in oldest), "evicts"):
            self._retired.append((now, service))

    def _shedClients(self) -> None:
        """Make room: close the tenth of the unused clients idle longest."""
        count = max(1, self.maxClients // 10)
        idle = [(e.idleSince, b) for b, e in self._clients.items() if e.refs <= 0]
        oldest = heapq.nsmallest(count, idle, key=lambda pair: pair[0])
        self._evictClients((bound for _, bound in oldest), "evicts")

    def explain(self, dtab: Dtab, path: Path) -> Deferred[str]:
        """
        The dtab and the delegation steps that led C{path} nowhere, as text
        for a human (the body of a "No hosts are available" reply).
        """
        header = f"dtab: {dtab.show or '(empty)'}"
        if not IDelegator.providedBy(self.interpreter):
            return succeed(header)
        d: Deferred[Any] = self.interpreter.delegate(dtab, path)
        d.addCallback(lambda tree: header + "\n" + explainDelegation(delegateJson(tree)))
        d.addErrback(lambda f: header)
        return d

    def noHosts(self, identified: Identified) -> Deferred[NoHostsAvailable]:
        """
        The error for a destination whose bound names have no live address
        (the client found no endpoint), explained like a negative binding.
        """
        dtab = self.dtab + identified.localDtab
        message = f"No hosts are available for {identified.dst.show}"
        d = self.explain(dtab, identified.dst)
        return d.addCallback(lambda detail: NoHostsAvailable(message, detail))

    def boundNames(self) -> list[str]:
        """The ids of the bound names that have a client, for C{/bound-names.json}."""
        return sorted({bound.id.show for bound in self._clients})

    def clients(self) -> Iterable[tuple[Bound, IClient]]:
        return [(bound, entry.client) for bound, entry in self._clients.items()]

    def close(self) -> Deferred[None]:
        """Stop routing; close every destination and client."""
        self._closed = True
        if self._sweeper.running:
            self._sweeper.stop()
        closing: list[Deferred[Any]] = [s.close() for s in self._services.values()]
        closing.extend(s.close() for _, s in self._retired)
        self._services.clear()
        self._retired = []
        closing.extend(e.client.close() for e in self._clients.values())
        self._clients.clear()
        return gatherResults(closing, consumeErrors=True).addCallback(lambda _: None)
