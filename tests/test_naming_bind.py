from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from linkrouter.interfaces import INamer
from linkrouter.naming import (
    EMPTY,
    FAIL,
    NEG,
    PENDING,
    Activity,
    Addr,
    AddrBound,
    Address,
    Bound,
    ConfiguredNamersInterpreter,
    Dtab,
    Failed,
    Leaf,
    NamerExceededMaxDepth,
    NameTree,
    Ok,
    Path,
    State,
    Union,
    UnknownNamer,
    Var,
    Weighted,
)


def P(text: str) -> Path:
    return Path.read(text)


@implementer(INamer)
class FakeNamer:
    """Each looked-up path gets a settable activity; records watchers."""

    def __init__(self, prefix: str) -> None:
        self.prefix = P(prefix)
        self.activities: dict[Path, Activity[NameTree[object]]] = {}
        self.watching: set[Path] = set()

    def lookup(self, path: Path) -> Activity[NameTree[object]]:
        if path not in self.activities:

            def start(update, path=path):
                self.watching.add(path)
                return lambda: self.watching.discard(path)

            var: Var[State[NameTree[object]]] = Var.watched(PENDING, start)
            self.activities[path] = Activity(var)
        return self.activities[path]

    def set(self, path: str, state) -> None:
        self.lookup(P(path)).var.set(state)

    def bound(self, rest: str, *ports: int) -> NameTree[Bound]:
        addr: Var[Addr] = Var(AddrBound(frozenset(Address("127.0.0.1", p) for p in ports)))
        return Leaf(Bound(self.prefix + P(rest), addr))


def _tree(state: Ok[Any]) -> Any:
    return state.value


def resolverNotUsed(host: str):
    raise AssertionError("no DNS here")


class BindTests(SynchronousTestCase):
    def interp(self, *namers: FakeNamer, maxDepth: int = 100) -> ConfiguredNamersInterpreter:
        return ConfiguredNamersInterpreter(
            [(n.prefix, n) for n in namers], resolver=resolverNotUsed, maxDepth=maxDepth
        )

    def test_inet(self) -> None:
        state = self.interp().bind(Dtab.read("/s=>/$/inet/127.0.0.1/8080"), P("/s/foo")).state
        assert isinstance(state, Ok)
        bound = _tree(state).value
        self.assertEqual((bound.id, bound.residual), (P("/$/inet/127.0.0.1/8080"), P("/foo")))
        self.assertEqual(bound.addr.sample(), AddrBound(frozenset([Address("127.0.0.1", 8080)])))

    def test_systemNamers(self) -> None:
        i = self.interp()
        self.assertEqual(i.bind(Dtab.empty(), P("/$/fail/x")).state, Ok(FAIL))
        self.assertEqual(i.bind(Dtab.empty(), P("/$/nil")).state, Ok(EMPTY))
        self.assertEqual(i.bind(Dtab.empty(), P("/nothing")).state, Ok(NEG))
        state = i.bind(Dtab.empty(), P("/$/nope/x")).state
        assert isinstance(state, Failed)
        self.assertIsInstance(state.exception, UnknownNamer)
        self.assertEqual(str(state.exception), "Unknown namer: nope for path: /$/nope/x")

    def test_altFallsThroughNegOnly(self) -> None:
        i = self.interp()
        bind = lambda d: i.bind(Dtab.read(d), P("/a")).state  # noqa: E731
        self.assertEqual(bind("/a=>/b | /$/nil"), Ok(EMPTY))
        self.assertEqual(bind("/a=>/$/fail | /$/nil"), Ok(FAIL))
        self.assertEqual(bind("/a=>$ | /$/fail"), Ok(EMPTY))
        self.assertEqual(bind("/a=>/$/nil;/a=>~"), Ok(EMPTY))

    def test_depth(self) -> None:
        state = self.interp().bind(Dtab.read("/a=>/b;/b=>/a"), P("/a")).state
        assert isinstance(state, Failed)
        self.assertIsInstance(state.exception, NamerExceededMaxDepth)
        self.assertIn("/a=>/b;/b=>/a", str(state.exception))
        self.assertIn("lookup of /a ", str(state.exception))

    def test_depthBoundary(self) -> None:
        # A chain of n lookups (the final namer lookup included) binds iff n <= maxDepth.
        dtab = Dtab.read("/p1=>/p2;/p2=>/p3;/p3=>/$/nil")
        self.assertEqual(self.interp(maxDepth=4).bind(dtab, P("/p1")).state, Ok(EMPTY))
        self.assertIsInstance(self.interp(maxDepth=3).bind(dtab, P("/p1")).state, Failed)

    def test_namerRebinds(self) -> None:
        n = FakeNamer("/#/fake")
        i = self.interp(n)
        act = i.bind(Dtab.read("/svc=>/#/fake"), P("/svc/users"))
        seen: list[object] = []
        c = act.observe(seen.append)
        self.assertEqual(seen, [PENDING])
        self.assertEqual(n.watching, {P("/users")})
        n.set("/users", Ok(n.bound("/users", 1)))
        n.set("/users", Failed(ValueError("down")))
        self.assertEqual(seen[-1], Failed(ValueError("down")))
        n.set("/users", Ok(NEG))
        self.assertEqual(seen[-1], Ok(NEG))
        c.close()
        self.assertEqual(n.watching, set())
        self.assertEqual(len(seen), 4)

    def test_namerSwitchReleasesOldWatch(self) -> None:
        n = FakeNamer("/#/fake")
        n.set("/a", Ok(Leaf(P("/#/fake/b"))))
        n.set("/b", Ok(n.bound("/b", 2)))
        n.set("/c", Ok(n.bound("/c", 3)))
        act = self.interp(n).bind(Dtab.empty(), P("/#/fake/a"))
        c = act.observe(lambda s: None)
        self.assertEqual(n.watching, {P("/a"), P("/b")})
        n.set("/a", Ok(Leaf(P("/#/fake/c"))))
        self.assertEqual(n.watching, {P("/a"), P("/c")})
        state = act.state
        assert isinstance(state, Ok)
        self.assertEqual(_tree(state).value.id, P("/#/fake/c"))
        c.close()

    def test_dtabWinsAndNamerOrder(self) -> None:
        first, last = FakeNamer("/#/n"), FakeNamer("/#/n")
        first.set("/x", Ok(first.bound("/first", 1)))
        last.set("/x", Ok(NEG))
        i = self.interp(first, last)
        state = i.bind(Dtab.empty(), P("/#/n/x")).state
        assert isinstance(state, Ok)
        # The last namer is asked first; it says ~ so the first one answers.
        self.assertEqual(_tree(state).value.id, P("/#/n/first"))
        state = i.bind(Dtab.read("/#/n=>/$/nil"), P("/#/n/x")).state
        self.assertEqual(state, Ok(EMPTY))

    def test_negativeEntries(self) -> None:
        """
        Only a lookup that is C{~} as a whole (no entry, or one entry
        rewriting to C{~}) goes on to the namers; several matching entries
        are tried in turn, last first, and all C{~} is C{~}.
        """
        n = FakeNamer("/#/n")
        n.set("/x", Ok(n.bound("/x", 1)))
        i = self.interp(n)
        bind = lambda d: i.bind(Dtab.read(d), P("/#/n/x")).state  # noqa: E731
        self.assertEqual(bind("/#/n=>~"), Ok(n.bound("/x", 1)))
        self.assertEqual(bind("/#/n=>~;/#/n/x=>~"), Ok(NEG))
        self.assertEqual(bind("/#/n=>/$/nil;/#/n/x=>~"), Ok(EMPTY))
        self.assertEqual(bind("/#/n=>/$/fail;/#/n/x=>/$/nil"), Ok(EMPTY))
        base = Dtab.read("/#/n=>/$/nil")
        self.assertEqual(i.bind(base + Dtab.read("/#/n/x=>~"), P("/#/n/x")).state, Ok(EMPTY))

    def test_unionStates(self) -> None:
        n = FakeNamer("/#/n")
        n.set("/ok", Ok(n.bound("/ok", 1)))
        n.set("/bad", Failed(ValueError("x")))
        i = self.interp(n)
        tree = "/#/n/ok & 2*/#/n/pending"
        state = i.bind(Dtab.read(f"/s=>{tree}"), P("/s")).state
        assert isinstance(state, Ok)
        bound = _tree(state).value
        self.assertEqual(bound.id, P("/#/n/ok"))
        self.assertEqual(dict(bound.addr.sample().meta), {"namer_nametree_weight": 1.0})
        state = i.bind(Dtab.read("/s=>/#/n/pending & /#/n/bad"), P("/s")).state
        self.assertEqual(state, Failed(ValueError("x")))
        # Any settled child makes the union settled, even a negative one.
        self.assertEqual(i.bind(Dtab.read("/s=>/#/n/pending & ~"), P("/s")).state, Ok(NEG))
        self.assertIs(i.bind(Dtab.read("/s=>/#/n/p1 & /#/n/p2"), P("/s")).state, PENDING)
        n.set("/other", Ok(n.bound("/other", 2)))
        state = i.bind(Dtab.read("/s=>/#/n/ok & 3*/#/n/other"), P("/s")).state
        assert isinstance(state, Ok)
        self.assertIsInstance(state.value, Union)
        self.assertEqual([w.weight for w in _tree(state).trees], [1.0, 3.0])
        self.assertIsInstance(_tree(state).trees[0], Weighted)

    def test_altPendingAndFailedStop(self) -> None:
        n = FakeNamer("/#/n")
        n.set("/bad", Failed(ValueError("x")))
        i = self.interp(n)
        self.assertIs(i.bind(Dtab.read("/s=>/#/n/p | /$/nil"), P("/s")).state, PENDING)
        self.assertEqual(
            i.bind(Dtab.read("/s=>/#/n/bad | /$/nil"), P("/s")).state, Failed(ValueError("x"))
        )

    def test_whenReady(self) -> None:
        n = FakeNamer("/#/n")
        d = self.interp(n).bind(Dtab.empty(), P("/#/n/x")).whenReady()
        self.assertNoResult(d)
        n.set("/x", Ok(NEG))
        self.assertEqual(self.successResultOf(d), NEG)
        self.assertEqual(n.watching, set())
