"""
Tests for the transformers (L{namers.transformers}).
"""

import ipaddress
from types import SimpleNamespace
from typing import Any

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from linkrouter._plugins import PluginRegistry
from linkrouter.config import Document
from linkrouter.interfaces import IDelegator, IInterpreter, INamer, ITransformer, ITransformerPlugin
from linkrouter.naming import (
    ADDR_NEG,
    NEG,
    PENDING,
    Activity,
    AddrBound,
    Address,
    Alt,
    Bound,
    ConfiguredNamersInterpreter,
    Dtab,
    Failed,
    Leaf,
    Ok,
    Path,
    Var,
)
from namers.transformers import (
    TransformerConfig,
    TransformingInterpreter,
    TransformingNamer,
    applyTransformers,
    const,
    localAddresses,
    localhost,
    localhostTransformer,
    port,
    portTransformer,
    replace,
    specificHost,
    specificHostTransformer,
)

from .test_namers_fs import stateOf, treeOf


def P(text):
    return Path.read(text)


def addrs(*pairs):
    return AddrBound(frozenset(Address(h, p) for h, p in pairs))


def bound(id, *pairs, residual="/"):
    return Bound(P(id), Var(addrs(*pairs)), P(residual))


def only(activity):
    """The single bound name of a transformed tree."""
    state = activity.state
    assert type(state) is Ok, state
    assert type(state.value) is Leaf, state.value
    return state.value.value


def context():
    return SimpleNamespace(reactor=MemoryReactorClock(), stats=None, baseDir=".", namers=())


class FilterTests(SynchronousTestCase):
    def test_localhost(self):
        t = localhostTransformer(P("/%/io.l5d.localhost"), frozenset(["127.0.0.1", "::1"]))
        verifyObject(ITransformer, t)
        tree = Leaf(bound("/#/io.l5d.fs/web", ("127.0.0.1", 1), ("192.0.2.1", 2), ("::1", 3)))
        b = only(t.transform(tree))
        self.assertEqual(b.id, P("/%/io.l5d.localhost/#/io.l5d.fs/web"))
        self.assertEqual(b.addr.sample(), addrs(("127.0.0.1", 1), ("::1", 3)))

    def test_nothingLeftIsNeg(self):
        t = localhostTransformer(P("/%/l"), frozenset(["127.0.0.1"]))
        b = only(t.transform(Leaf(bound("/#/x", ("192.0.2.1", 2), ("host.example", 3)))))
        self.assertIs(b.addr.sample(), ADDR_NEG)

    def test_followsAddressChanges(self):
        t = localhostTransformer(P("/%/l"), frozenset(["127.0.0.1"]))
        original = bound("/#/x", ("192.0.2.1", 2))
        b = only(t.transform(Leaf(original)))
        seen: list[Any] = []
        closable = b.addr.observe(seen.append)
        original.addr.set(addrs(("127.0.0.1", 5), ("192.0.2.1", 2)))
        closable.close()
        self.assertEqual(seen, [ADDR_NEG, addrs(("127.0.0.1", 5))])

    def test_localAddresses(self):
        found = localAddresses()
        self.assertIn("127.0.0.1", found)
        for ip in found:
            ipaddress.ip_address(ip)

    def test_specificHostIP(self):
        t = specificHostTransformer(P("/%/s"), "192.0.2.1", lambda h: self.fail("no lookup"))
        b = only(t.transform(Leaf(bound("/#/x", ("192.0.2.1", 2), ("192.0.2.9", 2)))))
        self.assertEqual(b.addr.sample(), addrs(("192.0.2.1", 2)))

    def test_specificHostName(self):
        d: defer.Deferred[Any] = defer.Deferred()
        t = specificHostTransformer(P("/%/s"), "db.example", lambda h: d)
        activity = t.transform(Leaf(bound("/#/x", ("192.0.2.1", 2), ("192.0.2.9", 2))))
        self.assertIs(activity.state, PENDING)
        d.callback(["192.0.2.9"])
        self.assertEqual(only(activity).addr.sample(), addrs(("192.0.2.9", 2)))

    def test_specificHostUnresolvable(self):
        t = specificHostTransformer(P("/%/s"), "db.example", lambda h: defer.fail(OSError("nx")))
        state = stateOf(t.transform(Leaf(bound("/#/x", ("192.0.2.1", 2)))))
        self.assertEqual(type(state), Failed)
        self.assertIn("cannot resolve db.example", str(state.exception))


class PortTests(SynchronousTestCase):
    def test_port(self):
        t = portTransformer(P("/%/io.l5d.port/4141"), 4141)
        tree = Alt(Leaf(bound("/#/a", ("192.0.2.1", 1), ("192.0.2.2", 2))), NEG)
        result = treeOf(t.transform(tree))
        b = result.trees[0].value
        self.assertEqual(result.trees[1], NEG)
        self.assertEqual(b.id, P("/%/io.l5d.port/4141/#/a"))
        self.assertEqual(b.addr.sample(), addrs(("192.0.2.1", 4141), ("192.0.2.2", 4141)))

    def test_keepsMeta(self):
        t = portTransformer(P("/%/p"), 1)
        original = Bound(
            P("/#/a"), Var(AddrBound(frozenset([Address("h", 2, frozenset([("weight", 3.0)]))])))
        )
        b = only(t.transform(Leaf(original)))
        (a,) = b.addr.sample().addresses
        self.assertEqual((a.port, a.weight), (1, 3.0))


class ReplaceTests(SynchronousTestCase):
    def build(self, plugin, path):
        return plugin.build(TransformerConfig(P(f"/%/{plugin.kind}"), P(path)), context())

    def test_replace(self):
        t = self.build(replace, "/$/inet/127.0.0.1/9990")
        tree = Alt(Leaf(bound("/#/a", ("192.0.2.1", 1))), Leaf(bound("/#/b", ("192.0.2.2", 1))))
        result = treeOf(t.transform(tree))
        for leaf in result.trees:
            self.assertEqual(leaf.value.id, P("/%/io.l5d.replace/$/inet/127.0.0.1/9990"))
            self.assertEqual(leaf.value.addr.sample(), addrs(("127.0.0.1", 9990)))

    def test_replaceKeepsNeg(self):
        t = self.build(replace, "/$/inet/127.0.0.1/9990")
        self.assertEqual(t.transform(NEG).state, Ok(NEG))

    def test_const(self):
        t = self.build(const, "/$/inet/127.0.0.1/9990")
        for tree in (NEG, Leaf(bound("/#/a", ("192.0.2.1", 1)))):
            b = only(t.transform(tree))
            self.assertEqual(b.id, P("/%/io.l5d.const/$/inet/127.0.0.1/9990"))
            self.assertEqual(b.addr.sample(), addrs(("127.0.0.1", 9990)))


@implementer(INamer)
class StaticNamer:
    def __init__(self, trees):
        self.trees = trees

    def lookup(self, path):
        return Activity.value(self.trees.get(path, NEG))


class WrapperTests(SynchronousTestCase):
    def setUp(self):
        self.t = localhostTransformer(P("/%/l"), frozenset(["127.0.0.1"]))
        self.p = portTransformer(P("/%/p"), 7)

    def test_chainInOrder(self):
        tree = Leaf(bound("/#/a", ("127.0.0.1", 1), ("192.0.2.1", 1)))
        b = only(applyTransformers([self.t, self.p], tree))
        self.assertEqual(b.id, P("/%/p/%/l/#/a"))
        self.assertEqual(b.addr.sample(), addrs(("127.0.0.1", 7)))

    def test_namer(self):
        namer = TransformingNamer(
            StaticNamer(
                {
                    P("/a"): Leaf(bound("/#/n/a", ("127.0.0.1", 1), ("192.0.2.1", 1))),
                    P("/b"): Leaf(P("/somewhere/else")),
                }
            ),
            [self.t],
        )
        verifyObject(INamer, namer)
        b = only(namer.lookup(P("/a")))
        self.assertEqual(b.id, P("/%/l/#/n/a"))
        self.assertEqual(b.addr.sample(), addrs(("127.0.0.1", 1)))
        self.assertEqual(namer.lookup(P("/b")).state, Ok(Leaf(P("/somewhere/else"))))
        self.assertEqual(namer.lookup(P("/c")).state, Ok(NEG))

    def test_interpreter(self):
        namer = StaticNamer({P("/a"): Leaf(bound("/#/n/a", ("127.0.0.1", 1), ("192.0.2.1", 1)))})
        inner = ConfiguredNamersInterpreter(
            [(P("/#/n"), namer)], resolver=lambda h: defer.succeed([])
        )
        interpreter = TransformingInterpreter(inner, [self.p])
        verifyObject(IInterpreter, interpreter)
        self.assertTrue(IDelegator.providedBy(interpreter))
        b = only(interpreter.bind(Dtab.read("/svc=>/#/n"), P("/svc/a")))
        self.assertEqual(b.id, P("/%/p/#/n/a"))
        self.assertEqual(b.addr.sample(), addrs(("127.0.0.1", 7), ("192.0.2.1", 7)))
        self.successResultOf(interpreter.delegate(Dtab.read("/svc=>/#/n"), P("/svc/a")))

    def test_notDelegator(self):
        @implementer(IInterpreter)
        class Plain:
            def bind(self, dtab, path):
                return Activity.value(NEG)

        self.assertFalse(IDelegator.providedBy(TransformingInterpreter(Plain(), [])))


class PluginTests(SynchronousTestCase):
    def parse(self, text):
        providers = [
            (ITransformerPlugin, p, "test") for p in (localhost, specificHost, port, replace, const)
        ]
        document = Document("t.yaml", PluginRegistry.fromProviders(providers))
        section = document.load(text)
        assert section is not None
        result = section.parseAs(ITransformerPlugin)
        return result, [str(p) for p in document.problems]

    def test_defaults(self):
        for text, prefix in [
            ("kind: io.l5d.localhost", "/%/io.l5d.localhost"),
            ("kind: io.l5d.specificHost\nhost: 10.0.0.1", "/%/io.l5d.specificHost"),
            ("kind: io.l5d.port\nport: 4141", "/%/io.l5d.port/4141"),
            ("kind: io.l5d.replace\npath: /$/inet/h/1", "/%/io.l5d.replace"),
            ("kind: io.l5d.const\npath: /$/inet/h/1", "/%/io.l5d.const"),
        ]:
            result, problems = self.parse(text)
            self.assertEqual(problems, [], text)
            self.assertEqual(result.config.prefix, P(prefix))

    def test_prefix(self):
        result, _ = self.parse("kind: io.l5d.localhost\nprefix: /mine")
        self.assertEqual(result.config.prefix, P("/%/mine"))

    def test_problems(self):
        for text, where in [
            ("kind: io.l5d.port", "port: required"),
            ("kind: io.l5d.port\nport: 70000", "port: must be a port"),
            ("kind: io.l5d.specificHost", "host: required"),
            ("kind: io.l5d.replace\npath: nope", "path: not a path"),
            ("kind: io.l5d.const", "path: required"),
            ("kind: io.l5d.localhost\nprefix: bad", "prefix: not a path"),
        ]:
            result, problems = self.parse(text)
            self.assertIsNone(result, text)
            self.assertEqual(len(problems), 1, problems)
            self.assertIn(where, problems[0])

    def test_build(self):
        ctx = context()
        for text in [
            "kind: io.l5d.localhost",
            "kind: io.l5d.specificHost\nhost: 10.0.0.1",
            "kind: io.l5d.port\nport: 4141",
            "kind: io.l5d.replace\npath: /$/inet/127.0.0.1/1",
            "kind: io.l5d.const\npath: /$/inet/127.0.0.1/1",
        ]:
            result, _ = self.parse(text)
            verifyObject(ITransformer, result.plugin.build(result.config, ctx))
