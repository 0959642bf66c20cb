"""
Tests for L{linkrouter.routing.Router}: binding once per destination,
following namer changes, unions, errors with explanations, eviction.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from linkrouter.interfaces import IClient, INamer, Status
from linkrouter.naming import (
    NEG,
    Activity,
    AddrBound,
    Address,
    Bound,
    ConfiguredNamersInterpreter,
    Dtab,
    Leaf,
    NameTree,
    Ok,
    Path,
    Var,
)
from linkrouter.naming.var import PENDING, Failed
from linkrouter.routing import (
    BindingFailed,
    BindingTimeout,
    Identified,
    NoHostsAvailable,
    Router,
    explainDelegation,
)
from linkrouter.telemetry.stats import MetricsRegistry


@implementer(IClient)
class RecordingClient:
    """An endpoint-set client that answers with its own name."""

    status = Status.OPEN

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[object] = []
        self.closed = False

    def __call__(self, request: Any) -> Deferred[Any]:
        self.requests.append(request)
        return succeed((self.name, request))

    def close(self) -> Deferred[Any]:
        self.closed = True
        return succeed(None)


@implementer(INamer)
class ControlledNamer:
    """A namer whose answers the test sets, counting active watches."""

    def __init__(self) -> None:
        self.trees: dict[Path, Var[Any]] = {}
        self.watching = 0

    def state(self, name: str) -> Var[Any]:
        path = Path.of(name)
        if path not in self.trees:

            def start(update: Any) -> Any:
                self.watching += 1

                def stop() -> None:
                    self.watching -= 1

                return stop

            self.trees[path] = Var.watched(PENDING, start)
        return self.trees[path]

    def set(self, name: str, tree: NameTree[Any]) -> None:
        self.state(name).set(Ok(tree))

    def lookup(self, path: Path) -> Activity[NameTree[Any]]:
        return Activity(self.state(path.take(1).show[1:]))


def bound(name: str, port: int = 1) -> Bound:
    return Bound(
        Path.of("#", "test", name),
        Var(AddrBound(frozenset({Address("127.0.0.1", port)}))),
    )


class RouterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.namer = ControlledNamer()
        self.interpreter = ConfiguredNamersInterpreter(
            [(Path.of("#", "test"), self.namer)], resolver=lambda host: succeed([])
        )
        self.built: dict[Path, RecordingClient] = {}
        self.services: list[Path] = []
        self.evicted: list[tuple[str, str]] = []
        self.router = self.makeRouter()

    def makeRouter(
        self, maxServices: int = 1000, maxClients: int = 1000, stats: Any = None
    ) -> Router:
        return Router(
            "http",
            Dtab.read("/svc=>/#/test"),
            self.interpreter,
            newClient=self.newClient,
            newService=self.newService,
            clock=self.clock,
            bindingTimeout=2.0,
            idleTtl=60.0,
            onEvict=lambda kind, name: self.evicted.append((kind, name)),
            maxServices=maxServices,
            maxClients=maxClients,
            stats=stats,
        )

    def newClient(self, b: Bound) -> IClient:
        client = self.built[b.id] = RecordingClient(b.id.show)
        return client

    def newService(self, dst: Path, dispatch: IClient) -> IClient:
        self.services.append(dst)
        return dispatch

    def route(self, name: str, local: str = "") -> Deferred[Any]:
        return self.router.route(Identified(Path.of("svc", name), Dtab.read(local)), "req")

    def test_bindsOncePerDestination(self) -> None:
        """
        The first request binds; later ones reuse the picker: one service,
        one client, one namer watch.
        """
        self.namer.set("users", Leaf(bound("users")))
        for _ in range(3):
            self.assertEqual(self.successResultOf(self.route("users")), ("/#/test/users", "req"))
        self.assertEqual(self.services, [Path.of("svc", "users")])
        self.assertEqual(list(self.built), [Path.of("#", "test", "users")])
        self.assertEqual(self.namer.watching, 1)

    def test_pendingThenBound(self) -> None:
        """
        A request that arrives while the name is pending is sent once the
        namer answers.
        """
        d = self.route("users")
        self.assertNoResult(d)
        self.namer.set("users", Leaf(bound("users")))
        self.assertEqual(self.successResultOf(d)[0], "/#/test/users")

    def test_bindingTimeout(self) -> None:
        """
        A name that stays pending fails the request after the binding
        timeout, naming the path.
        """
        d = self.route("users")
        self.clock.advance(2.0)
        error = self.failureResultOf(d, BindingTimeout).value
        self.assertIn("/svc/users", str(error))
        self.assertIn("2000 ms", str(error))

    def test_cancelWhilePending(self) -> None:
        """
        Cancelling a request that waits for binding forgets it: no timer is
        left behind.
        """
        d = self.route("users")
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noHostsExplains(self) -> None:
        """
        A name that binds to nothing fails with "No hosts are available",
        the dtab and the delegation steps.
        """
        self.namer.set("users", NEG)
        error = self.failureResultOf(self.route("users"), NoHostsAvailable).value
        self.assertEqual(str(error), "No hosts are available for /svc/users")
        self.assertIn("dtab: /svc=>/#/test", error.detail)
        self.assertIn("/#/test/users", error.detail)

    def test_failedNamer(self) -> None:
        """
        A namer failure fails requests with L{BindingFailed} saying why.
        """
        self.namer.state("users").set(Failed(RuntimeError("zookeeper is down")))
        error = self.failureResultOf(self.route("users"), BindingFailed).value
        self.assertIn("zookeeper is down", str(error))

    def test_dtabFail(self) -> None:
        """
        A dtab that says C{!} fails with L{BindingFailed}.
        """
        error = self.failureResultOf(self.route("x", "/svc/x=>!"), BindingFailed).value
        self.assertIn("!", str(error))

    def test_namerChangeMovesNewRequests(self) -> None:
        """
        When a namer's answer changes, new requests go to the new client and
        the old one is closed once it has been idle for the TTL.
        """
        self.namer.set("users", Leaf(bound("a")))
        self.successResultOf(self.route("users"))
        self.namer.set("users", Leaf(bound("b")))
        self.assertEqual(self.successResultOf(self.route("users"))[0], "/#/test/b")
        old = self.built[Path.of("#", "test", "a")]
        self.assertFalse(old.closed)
        self.router.start()
        self.clock.advance(61)
        self.clock.advance(15)
        self.assertTrue(old.closed)
        self.assertIn(("client", "/#/test/a"), self.evicted)
        self.assertFalse(self.built[Path.of("#", "test", "b")].closed)

    def test_unionSplitsByWeight(self) -> None:
        """
        A dtab union sends each branch its share of traffic.
        """
        values = iter([i / 100 for i in range(100)])
        self.router.random = lambda: next(values)
        self.namer.set("a", Leaf(bound("a")))
        self.namer.set("b", Leaf(bound("b")))
        local = "/svc/split=>0.9 * /#/test/a & 0.1 * /#/test/b"
        names = [self.successResultOf(self.route("split", local))[0] for _ in range(100)]
        self.assertEqual(names.count("/#/test/a"), 90)
        self.assertEqual(names.count("/#/test/b"), 10)

    def test_unionSkipsDeadBranch(self) -> None:
        """
        A union branch that binds to nothing gets no traffic while another
        branch is live.
        """
        self.namer.set("a", Leaf(bound("a")))
        self.namer.set("b", NEG)
        local = "/svc/split=>0.5 * /#/test/a & 0.5 * /#/test/b"
        for _ in range(10):
            self.assertEqual(self.successResultOf(self.route("split", local))[0], "/#/test/a")

    def test_localDtabIsItsOwnDestination(self) -> None:
        """
        A per-request dtab makes a separate destination, bound with the
        router's dtab followed by the local entries.
        """
        self.namer.set("users", Leaf(bound("users")))
        self.namer.set("canary", Leaf(bound("canary")))
        self.assertEqual(self.successResultOf(self.route("users"))[0], "/#/test/users")
        routed = self.successResultOf(self.route("users", "/svc/users=>/#/test/canary"))
        self.assertEqual(routed[0], "/#/test/canary")
        self.assertEqual(len(self.services), 2)

    def test_idleDestinationEvicted(self) -> None:
        """
        A destination unused for the TTL is evicted: its namer watch stops
        and its client is closed.
        """
        registry = MetricsRegistry()
        self.router = self.makeRouter(stats=registry.statsReceiver())
        self.namer.set("users", Leaf(bound("users")))
        self.successResultOf(self.route("users"))
        self.router.start()
        self.clock.advance(61)
        self.assertEqual(self.namer.watching, 0)
        self.clock.advance(61)
        self.assertTrue(self.built[Path.of("#", "test", "users")].closed)
        self.assertEqual(self.router.boundNames(), [])
        counted = {
            "/".join(names): metric.value  # type: ignore[union-attr]
            for names, metric in registry.items()
        }
        self.assertEqual(
            counted,
            {
                "bindcache/path/misses": 1,
                "bindcache/path/evicts": 0,
                "bindcache/path/expires": 1,
                "bindcache/client/misses": 1,
                "bindcache/client/evicts": 0,
                "bindcache/client/expires": 1,
            },
        )

    def test_idleOverrideKeepsTheNamesMetrics(self) -> None:
        """
        A destination made by a per-request dtab shares its name's metrics:
        when it idles out while the plain destination is in use, the
        metrics stay.
        """
        self.namer.set("users", Leaf(bound("users")))
        self.namer.set("canary", Leaf(bound("canary")))
        self.successResultOf(self.route("users", "/svc/users=>/#/test/canary"))
        self.router.start()
        for _ in range(4):
            self.clock.advance(16)
            self.successResultOf(self.route("users"))
        self.assertEqual(len(self.services), 2)
        self.assertEqual(self.namer.watching, 1)  # the override's destination is gone
        self.assertNotIn(("service", "/svc/users"), self.evicted)
        self.clock.advance(61)
        self.clock.advance(61)
        self.assertIn(("client", "/#/test/canary"), self.evicted)
        self.assertIn(("service", "/svc/users"), self.evicted)

    def test_destinationsBounded(self) -> None:
        """
        C{bindingCache.paths}: a miss in a full cache retires the tenth used
        least recently, with its metrics; a retired destination finishes
        its requests and is closed by a later sweep.
        """
        self.router = self.makeRouter(maxServices=20)
        for n in range(20):
            self.namer.set(f"s{n}", Leaf(bound(f"s{n}")))
            self.successResultOf(self.route(f"s{n}"))
            self.clock.advance(1)
        self.successResultOf(self.route("s0"))  # now the most recent
        self.namer.set("new", Leaf(bound("new")))
        self.successResultOf(self.route("new"))
        evicted = [name for kind, name in self.evicted if kind == "service"]
        self.assertEqual(evicted, ["/svc/s1", "/svc/s2"])
        self.assertEqual(self.namer.watching, 21)
        self.router.start()
        self.clock.advance(15)
        self.clock.advance(15)
        self.assertEqual(self.namer.watching, 19)
        self.assertEqual(len(self.router._services), 19)
        self.successResultOf(self.route("s1"))  # bound again
        self.assertEqual(self.services.count(Path.of("svc", "s1")), 2)

    def test_clientsBoundedUnlessInUse(self) -> None:
        """
        C{bindingCache.clients}: a miss in a full client cache closes
        clients no destination uses, never one in use, so the cache may
        hold more than its size while they are all in use.
        """
        self.router = self.makeRouter(maxClients=2)
        for name in ("a", "b", "c"):
            self.namer.set(name, Leaf(bound(name)))
            self.successResultOf(self.route(name))
        self.assertEqual(len(self.router.boundNames()), 3)
        self.namer.set("a", Leaf(bound("b")))  # /svc/a now shares b's client
        self.namer.set("d", Leaf(bound("d")))
        self.successResultOf(self.route("d"))
        self.assertTrue(self.built[Path.of("#", "test", "a")].closed)
        self.assertIn(("client", "/#/test/a"), self.evicted)
        self.assertEqual(self.router.boundNames(), ["/#/test/b", "/#/test/c", "/#/test/d"])
        self.assertEqual(self.successResultOf(self.route("a"))[0], "/#/test/b")

    def test_setDtab(self) -> None:
        """
        A new dtab applies to new requests at once; destinations bound with
        the old one are closed by a later sweep, releasing their watches.
        """
        self.namer.set("users", Leaf(bound("users")))
        self.namer.set("canary", Leaf(bound("canary")))
        self.assertEqual(self.successResultOf(self.route("users"))[0], "/#/test/users")
        self.router.setDtab(Dtab.read("/svc=>/#/test;/svc/users=>/#/test/canary"))
        self.assertEqual(self.successResultOf(self.route("users"))[0], "/#/test/canary")
        self.assertEqual(self.namer.watching, 2)
        self.router.start()
        self.clock.advance(15)
        self.clock.advance(15)
        self.assertEqual(self.namer.watching, 1)

    def test_closeFailsWaiters(self) -> None:
        """
        Closing the router fails waiting requests and refuses new ones.
        """
        d = self.route("users")
        self.successResultOf(self.router.close())
        self.failureResultOf(d)
        self.failureResultOf(self.route("users"))


class ExplainTests(SynchronousTestCase):
    def test_render(self) -> None:
        """
        Delegation JSON renders as indented steps.
        """
        text = explainDelegation(
            {
                "type": "delegate",
                "path": "/svc/foo",
                "delegate": {
                    "type": "neg",
                    "path": "/#/io.l5d.fs/foo",
                    "dentry": {"prefix": "/svc", "dst": "/#/io.l5d.fs"},
                },
            }
        )
        self.assertEqual(
            text, "/svc/foo\n  /#/io.l5d.fs/foo  (via /svc=>/#/io.l5d.fs) -> no match (~)"
        )


class WrappedServiceCloseTests(SynchronousTestCase):
    def test_closeThroughPolicyWrapper(self) -> None:
        """
        Closing a router whose service clients wrap the dispatcher (as the
        service policy does) closes each destination once, without
        recursing.
        """

        @implementer(IClient)
        class Wrapper:
            status = Status.OPEN

            def __init__(self, inner: IClient) -> None:
                self.inner = inner

            def __call__(self, request: Any) -> Deferred[Any]:
                return self.inner(request)

            def close(self) -> Deferred[Any]:
                return self.inner.close()

        namer = ControlledNamer()
        namer.set("users", Leaf(bound("users")))
        router = Router(
            "http",
            Dtab.read("/svc=>/#/test"),
            ConfiguredNamersInterpreter(
                [(Path.of("#", "test"), namer)], resolver=lambda host: succeed([])
            ),
            newClient=lambda b: RecordingClient(b.id.show),
            newService=lambda dst, dispatch: Wrapper(dispatch),
            clock=Clock(),
        )
        self.successResultOf(router.route(Identified(Path.of("svc", "users")), "req"))
        self.successResultOf(router.close())
        self.assertEqual(namer.watching, 0)
