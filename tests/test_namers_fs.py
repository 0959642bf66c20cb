"""
Tests for the C{io.l5d.fs} namer (L{namers.fs}) and its directory watch.
"""

import os
import shutil
import tempfile
from types import SimpleNamespace
from typing import Any, cast

from twisted.internet import defer, reactor
from twisted.internet.task import Clock, deferLater
from twisted.logger import globalLogPublisher
from twisted.python.runtime import platform
from twisted.trial.unittest import SynchronousTestCase, TestCase

from linkrouter._plugins import PluginRegistry
from linkrouter.config import Document
from linkrouter.interfaces import INamer, INamerPlugin
from linkrouter.naming import (
    ADDR_NEG,
    NEG,
    AddrBound,
    Address,
    AddrFailed,
    Bound,
    Leaf,
    Ok,
    Path,
    Var,
)
from linkrouter.telemetry.stats import MetricsRegistry
from namers._watch import MAX_FILE_BYTES
from namers.fs import FsConfig, FsNamer, FsNamerError, fsNamer, parseAddress


def P(text):
    return Path.read(text)


def treeOf(activity):
    """The tree an activity holds now."""
    return activity.state.value


def leafOf(activity):
    """The value of the leaf an activity holds now."""
    return activity.state.value.value


def stateOf(activity):
    return activity.state


def addrs(*pairs, weights=None):
    weights = weights or {}
    found = []
    for host, port in pairs:
        w = weights.get((host, port))
        found.append(
            Address(host, port, frozenset([("weight", w)]) if w is not None else frozenset())
        )
    return AddrBound(frozenset(found))


def metricValue(registry, name):
    """The value of the metric C{name} in C{registry}."""
    for names, m in registry.items():
        if "/".join(names) == name:
            return m.read() if hasattr(m, "read") else m.value
    raise KeyError(name)


class LogCapture:
    def __init__(self, case):
        self.events: list[Any] = []
        globalLogPublisher.addObserver(cast(Any, self.events.append))
        case.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def lines(self, namespace):
        from twisted.logger import formatEvent

        return [
            formatEvent(e) for e in self.events if e.get("log_namespace", "").startswith(namespace)
        ]


class FsFixture(SynchronousTestCase):
    def setUpFs(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root, True)
        self.metrics = MetricsRegistry()

    def write(self, name, text):
        with open(os.path.join(self.root, name), "w") as f:
            f.write(text)

    def metric(self, name):
        return metricValue(self.metrics, name)


class ParseAddressTests(SynchronousTestCase):
    def test_plain(self):
        self.assertEqual(parseAddress("10.0.0.1 8080"), Address("10.0.0.1", 8080))

    def test_weighted(self):
        a: Any = parseAddress("host.example 80 * 2.5")
        self.assertEqual(a.weight, 2.5)
        self.assertEqual(a.host, "host.example")

    def test_ipv6(self):
        self.assertEqual(parseAddress("[::1] 80"), Address("::1", 80))
        self.assertEqual(parseAddress("::1 80"), Address("::1", 80))

    def test_bad(self):
        for line in ["h", "h 0", "h 65536", "h x", "h 80 2", "h 80 * -1", "h 80 * nan", "h/x 80"]:
            self.assertIsInstance(parseAddress(line), str, line)


class FsNamerTests(FsFixture):
    def setUp(self):
        self.setUpFs()
        self.clock = Clock()
        self.namer = FsNamer(
            self.root, P("/#/io.l5d.fs"), self.clock, None, self.metrics.statsReceiver()
        )
        self.logs = LogCapture(self)

    def observe(self, activity):
        states: list[Any] = []
        closable = activity.observe(states.append)
        self.addCleanup(closable.close)
        return states

    def test_interface(self):
        from zope.interface.verify import verifyObject

        verifyObject(INamer, self.namer)

    def test_lookup(self):
        self.write("web", "# web servers\n\n192.0.2.1 8080\n192.0.2.2 8080 * 2.0  # heavy\n")
        states = self.observe(self.namer.lookup(P("/web/a/b")))
        tree = states[-1].value
        self.assertEqual(type(tree), Leaf)
        bound = tree.value
        self.assertEqual(bound, Bound(P("/#/io.l5d.fs/web"), Var(ADDR_NEG), P("/a/b")))
        self.assertEqual(bound.id.show, "/#/io.l5d.fs/web")
        self.assertEqual(
            bound.addr.sample(),
            addrs(("192.0.2.1", 8080), ("192.0.2.2", 8080), weights={("192.0.2.2", 8080): 2.0}),
        )

    def test_missingIsNeg(self):
        states = self.observe(self.namer.lookup(P("/nope")))
        self.assertEqual(states, [Ok(NEG)])
        self.assertEqual(self.namer.lookup(Path()).state, Ok(NEG))
        self.assertEqual(self.namer.lookup(P("/..")).state, Ok(NEG))

    def test_addEditDeleteRename(self):
        states = self.observe(self.namer.lookup(P("/svc")))
        self.assertEqual(states[-1], Ok(NEG))
        self.write("svc", "127.0.0.1 1\n")
        self.clock.advance(1)
        bound = states[-1].value.value
        seen: list[Any] = []
        self.addCleanup(bound.addr.observe(seen.append).close)
        self.assertEqual(seen, [addrs(("127.0.0.1", 1))])
        self.write("svc", "127.0.0.1 2\n127.0.0.1 3\n")
        self.clock.advance(1)
        self.assertEqual(seen[-1], addrs(("127.0.0.1", 2), ("127.0.0.1", 3)))
        os.rename(os.path.join(self.root, "svc"), os.path.join(self.root, "other"))
        self.clock.advance(1)
        self.assertEqual(states[-1], Ok(NEG))
        self.assertEqual(seen[-1], ADDR_NEG)
        other = leafOf(self.namer.lookup(P("/other")))
        self.assertEqual(other.addr.sample(), addrs(("127.0.0.1", 2), ("127.0.0.1", 3)))
        self.write("svc", "127.0.0.1 4\n")
        os.remove(os.path.join(self.root, "other"))
        self.clock.advance(1)
        self.assertEqual(seen[-1], addrs(("127.0.0.1", 4)))
        self.assertEqual(self.namer.lookup(P("/other")).state, Ok(NEG))

    def test_badLinesSkippedOnce(self):
        self.write("svc", "127.0.0.1 1\nnot an address line\n127.0.0.1 99999\n127.0.0.1 2\n")
        bound = leafOf(self.namer.lookup(P("/svc")))
        seen: list[Any] = []
        self.addCleanup(bound.addr.observe(seen.append).close)
        self.clock.advance(5)
        self.assertEqual(seen, [addrs(("127.0.0.1", 1), ("127.0.0.1", 2))])
        lines = self.logs.lines("linkrouter.namers.fs")
        self.assertEqual(len(lines), 2)
        self.assertIn("/svc:2: skipped", lines[0])
        self.assertIn("/svc:3: skipped", lines[1])
        self.assertEqual(self.metric("bad_lines"), 2)

    def test_unreadableDirectoryKeepsLastGoodState(self):
        self.write("svc", "127.0.0.1 1\n")
        states = self.observe(self.namer.lookup(P("/svc")))
        bound = states[-1].value.value
        seen: list[Any] = []
        self.addCleanup(bound.addr.observe(seen.append).close)
        self.assertEqual(self.metric("stale"), 0)
        moved = self.root + ".moved"
        os.rename(self.root, moved)
        self.addCleanup(shutil.rmtree, moved, True)
        self.clock.advance(3)
        self.assertEqual(seen, [addrs(("127.0.0.1", 1))])
        self.assertEqual(type(states[-1].value), Leaf)
        self.assertEqual(self.metric("stale"), 1)
        self.assertEqual(self.metric("read_errors"), 1)
        errors = [line for line in self.logs.lines("linkrouter.namers") if "cannot read" in line]
        self.assertEqual(len(errors), 1)
        self.assertIn("keeping the last good state (1 files)", errors[0])
        os.rename(moved, self.root)
        self.write("svc", "127.0.0.1 2\n")
        self.clock.advance(1)
        self.assertEqual(seen[-1], addrs(("127.0.0.1", 2)))
        self.assertEqual(self.metric("stale"), 0)

    def test_unreadableFileKeepsLastGoodContent(self):
        self.write("svc", "127.0.0.1 1\n")
        bound = leafOf(self.namer.lookup(P("/svc")))
        seen: list[Any] = []
        self.addCleanup(bound.addr.observe(seen.append).close)
        self.write("svc", "#" * (MAX_FILE_BYTES + 1))
        self.clock.advance(1)
        self.assertEqual(seen, [addrs(("127.0.0.1", 1))])
        self.assertEqual(self.metric("stale"), 1)
        fresh = self.namer.lookup(P("/big"))
        self.write("big", "#" * (MAX_FILE_BYTES + 1))
        self.clock.advance(1)
        self.assertEqual(type(leafOf(fresh).addr.sample()), AddrFailed)

    def test_unreadableAtStartFails(self):
        namer = FsNamer(
            self.root + ".missing", P("/#/x"), self.clock, None, self.metrics.statsReceiver()
        )
        state = stateOf(namer.lookup(P("/svc")))
        self.assertIn("cannot read the directory", str(state.exception))

    def test_watchIsReferenceCounted(self):
        self.write("svc", "127.0.0.1 1\n")
        watch = self.namer.watch
        self.assertFalse(watch.watching)
        activity = self.namer.lookup(P("/svc"))
        first = activity.observe(lambda s: None)
        bound = leafOf(activity)
        second = bound.addr.observe(lambda a: None)
        self.assertTrue(watch.watching)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        first.close()
        self.assertTrue(watch.watching)
        second.close()
        self.assertFalse(watch.watching)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sameBoundAcrossChanges(self):
        self.write("svc", "127.0.0.1 1\n")
        a = leafOf(self.namer.lookup(P("/svc")))
        self.write("svc", "127.0.0.1 2\n")
        b = leafOf(self.namer.lookup(P("/svc")))
        self.assertIs(a.addr, b.addr)


class FsPluginTests(FsFixture):
    def setUp(self):
        self.setUpFs()

    def parse(self, text):
        registry = PluginRegistry.fromProviders([(INamerPlugin, fsNamer, "test")])
        document = Document("test.yaml", registry)
        section = document.load(text)
        assert section is not None
        result = section.parseAs(INamerPlugin)
        return result, document.problems

    def context(self, baseDir):
        return SimpleNamespace(
            reactor=Clock(), stats=self.metrics.statsReceiver(), baseDir=baseDir, namers=()
        )

    def test_parse(self):
        result, problems = self.parse("kind: io.l5d.fs\nrootDir: disco\nprefix: /disco\n")
        self.assertEqual(problems, [])
        self.assertEqual(result.config, FsConfig("disco", P("/#/disco")))

    def test_parseDefaults(self):
        result, _ = self.parse("kind: io.l5d.fs\nrootDir: /x\n")
        self.assertEqual(result.config.idPrefix, P("/#/io.l5d.fs"))

    def test_rootDirRequired(self):
        _, problems = self.parse("kind: io.l5d.fs\n")
        self.assertEqual([p.path for p in problems], ["rootDir"])

    def test_buildRelativeRoot(self):
        os.mkdir(os.path.join(self.root, "disco"))
        self.write("disco/web", "127.0.0.1 80\n")
        namer = fsNamer.build(FsConfig("disco", P("/#/disco")), self.context(self.root))
        bound = leafOf(namer.lookup(P("/web")))
        self.assertEqual(bound.id, P("/#/disco/web"))
        self.assertEqual(bound.addr.sample(), addrs(("127.0.0.1", 80)))

    def test_buildMissingRoot(self):
        e = self.assertRaises(
            FsNamerError, fsNamer.build, FsConfig("nope", P("/#/x")), self.context(self.root)
        )
        self.assertIn("is not a directory", str(e))


class InotifyTests(FsFixture, TestCase):
    """The namer on the real reactor with inotify."""

    timeout = 20

    if not platform.supportsINotify():
        skip = "inotify is not available here"

    def setUp(self):
        self.setUpFs()
        self.namer = FsNamer(
            self.root, P("/#/io.l5d.fs"), reactor, reactor, self.metrics.statsReceiver()
        )

    @defer.inlineCallbacks
    def waitFor(self, var, expected, seconds=5.0):
        d: defer.Deferred[Any] = defer.Deferred()

        def check(value):
            if value == expected and not d.called:
                d.callback(value)

        closable = var.observe(check)
        try:
            yield d.addTimeout(seconds, reactor)
        finally:
            closable.close()

    @defer.inlineCallbacks
    def test_changesArriveWithoutPolling(self):
        activity = self.namer.lookup(P("/svc"))
        states: list[Any] = []
        closable = activity.observe(states.append)
        self.addCleanup(closable.close)
        self.assertTrue(self.namer.watch.usingInotify)
        self.assertEqual(states[-1], Ok(NEG))
        self.write("svc", "127.0.0.1 1\n")
        yield self.waitFor(activity.var, Ok(Leaf(Bound(P("/#/io.l5d.fs/svc"), Var(ADDR_NEG)))))
        bound = leafOf(activity)
        held = bound.addr.observe(lambda a: None)
        self.addCleanup(held.close)
        self.write("svc", "127.0.0.1 2\n")
        yield self.waitFor(bound.addr, addrs(("127.0.0.1", 2)))
        os.rename(os.path.join(self.root, "svc"), os.path.join(self.root, "gone"))
        yield self.waitFor(bound.addr, ADDR_NEG)
        yield self.waitFor(activity.var, Ok(NEG))
        self.assertFalse(self.namer.watch._poller)

    @defer.inlineCallbacks
    def test_directoryGoneAndBack(self):
        self.write("svc", "127.0.0.1 1\n")
        bound = leafOf(self.namer.lookup(P("/svc")))
        held = bound.addr.observe(lambda a: None)
        self.addCleanup(held.close)
        moved = self.root + ".moved"
        self.addCleanup(shutil.rmtree, moved, True)
        os.rename(self.root, moved)
        for _ in range(100):
            if self.metric("stale") == 1:
                break
            yield deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(self.metric("stale"), 1)
        self.assertEqual(bound.addr.sample(), addrs(("127.0.0.1", 1)))
        self.assertFalse(self.namer.watch.usingInotify)
        os.rename(moved, self.root)
        self.write("svc", "127.0.0.1 2\n")
        yield self.waitFor(bound.addr, addrs(("127.0.0.1", 2)))
        self.assertTrue(self.namer.watch.usingInotify)


class DropinTests(SynchronousTestCase):
    def test_registered(self):
        from linkrouter.interfaces import IInterpreterPlugin, ITransformerPlugin

        registry = PluginRegistry.discover()
        self.assertEqual(
            {k for k in registry.kinds(INamerPlugin) if k in ("io.l5d.fs", "io.l5d.dnssrv")},
            {"io.l5d.fs", "io.l5d.dnssrv"},
        )
        self.assertTrue({"default", "io.l5d.fs"} <= set(registry.kinds(IInterpreterPlugin)))
        transformers = {
            "io.l5d.localhost",
            "io.l5d.specificHost",
            "io.l5d.port",
            "io.l5d.replace",
            "io.l5d.const",
        }
        self.assertTrue(transformers <= set(registry.kinds(ITransformerPlugin)))
