"""
Tests for the interpreters (L{namers.interpreters}).
"""

import os
import shutil
import tempfile
from types import SimpleNamespace
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from linkrouter._plugins import PluginRegistry
from linkrouter.config import Document
from linkrouter.interfaces import (
    IDelegator,
    IInterpreter,
    IInterpreterPlugin,
    INamerPlugin,
    ITransformerPlugin,
)
from linkrouter.naming import (
    AddrBound,
    Address,
    ConfiguredNamersInterpreter,
    Dtab,
    Failed,
    Leaf,
    Ok,
    Path,
)
from linkrouter.telemetry.stats import MetricsRegistry
from namers.fs import FsConfig, FsNamer, fsNamer
from namers.interpreters import (
    DtabFileError,
    FsDtabInterpreter,
    FsInterpreterConfig,
    defaultInterpreter,
    fsInterpreter,
)
from namers.transformers import (
    TransformerConfig,
    TransformingInterpreter,
    TransformingNamer,
    port,
)

from .test_namers_fs import LogCapture, leafOf, metricValue, stateOf


def P(text):
    return Path.read(text)


def addrs(*pairs):
    return AddrBound(frozenset(Address(h, p) for h, p in pairs))


class Fixture(SynchronousTestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root, True)
        os.mkdir(os.path.join(self.root, "disco"))
        self.write("disco/web", "127.0.0.1 8080\n")
        self.write("disco/api", "127.0.0.1 8081\n")
        self.metrics = MetricsRegistry()
        self.clock = Clock()
        self.fs = FsNamer(
            os.path.join(self.root, "disco"),
            P("/#/io.l5d.fs"),
            self.clock,
            None,
            self.metrics.statsReceiver().scope("namer"),
        )
        self.logs = LogCapture(self)

    def write(self, name, text):
        with open(os.path.join(self.root, name), "w") as f:
            f.write(text)

    def context(self):
        return SimpleNamespace(
            reactor=self.clock,
            stats=self.metrics.statsReceiver(),
            baseDir=self.root,
            namers=((P("/#/io.l5d.fs"), self.fs),),
        )

    def addressesOf(self, activity):
        state = activity.state
        self.assertEqual(type(state), Ok, state)
        self.assertEqual(type(state.value), Leaf, state.value)
        return state.value.value.addr.sample()

    def metric(self, name):
        return metricValue(self.metrics, name)


class DefaultInterpreterTests(Fixture):
    def test_bindsThroughNamers(self):
        interpreter = defaultInterpreter.build(None, self.context())
        verifyObject(IInterpreter, interpreter)
        self.assertIsInstance(interpreter, ConfiguredNamersInterpreter)
        activity = interpreter.bind(Dtab.read("/svc=>/#/io.l5d.fs"), P("/svc/web"))
        self.assertEqual(self.addressesOf(activity), addrs(("127.0.0.1", 8080)))

    def test_interpreterWithTransformers(self):
        interpreter = TransformingInterpreter(
            defaultInterpreter.build(None, self.context()),
            [port.build(TransformerConfig(P("/%/io.l5d.port/1"), 1), self.context())],
        )
        self.assertTrue(IDelegator.providedBy(interpreter))
        activity = interpreter.bind(Dtab.read("/svc=>/#/io.l5d.fs"), P("/svc/web"))
        self.assertEqual(self.addressesOf(activity), addrs(("127.0.0.1", 1)))
        self.assertEqual(leafOf(activity).id, P("/%/io.l5d.port/1/#/io.l5d.fs/web"))

    def test_namerWithTransformers(self):
        namer = TransformingNamer(
            fsNamer.build(FsConfig("disco", P("/#/io.l5d.fs")), self.context()),
            [port.build(TransformerConfig(P("/%/p"), 2), self.context())],
        )
        activity = namer.lookup(P("/web"))
        self.assertEqual(self.addressesOf(activity), addrs(("127.0.0.1", 2)))
        self.assertEqual(leafOf(activity).id, P("/%/p/#/io.l5d.fs/web"))


class FsInterpreterTests(Fixture):
    def setUp(self):
        super().setUp()
        self.write("dtab", "/svc => /#/io.l5d.fs;\n")
        self.interpreter = fsInterpreter.build(FsInterpreterConfig("dtab"), self.context())

    def bindWeb(self, dtab=""):
        activity = self.interpreter.bind(Dtab.read(dtab), P("/svc/web"))
        seen: list[Any] = []
        closable = activity.observe(seen.append)
        self.addCleanup(closable.close)
        return seen

    def test_interfaces(self):
        verifyObject(IInterpreter, self.interpreter)
        verifyObject(IDelegator, self.interpreter)
        self.assertIsInstance(self.interpreter, FsDtabInterpreter)

    def test_bind(self):
        seen = self.bindWeb()
        self.assertEqual(seen[-1].value.value.addr.sample(), addrs(("127.0.0.1", 8080)))

    def test_givenDtabComesLast(self):
        seen = self.bindWeb("/svc/web => /$/inet/127.0.0.1/1")
        self.assertEqual(seen[-1].value.value.addr.sample(), addrs(("127.0.0.1", 1)))

    def test_editRebinds(self):
        seen = self.bindWeb()
        self.write("dtab", "/svc/web => /#/io.l5d.fs/api;\n")
        self.clock.advance(1)
        self.assertEqual(seen[-1].value.value.id, P("/#/io.l5d.fs/api"))

    def test_brokenEditKeepsLastGood(self):
        seen = self.bindWeb()
        count = len(seen)
        self.write("dtab", "/svc => => nonsense\n")
        self.clock.advance(3)
        self.assertEqual(len(seen), count)
        self.assertEqual(seen[-1].value.value.id, P("/#/io.l5d.fs/web"))
        errors = self.logs.lines("linkrouter.namers.interpreters")
        self.assertEqual(len(errors), 1)
        self.assertIn("not a dtab", errors[0])
        self.assertIn("keeping the last good dtab", errors[0])
        self.assertEqual(self.metric("interpreter/stale"), 1)
        self.assertEqual(self.metric("interpreter/parse_errors"), 1)
        self.write("dtab", "/svc => /#/io.l5d.fs; /svc/web => /#/io.l5d.fs/api\n")
        self.clock.advance(1)
        self.assertEqual(seen[-1].value.value.id, P("/#/io.l5d.fs/api"))
        self.assertEqual(self.metric("interpreter/stale"), 0)

    def test_deletedKeepsLastGood(self):
        seen = self.bindWeb()
        os.remove(os.path.join(self.root, "dtab"))
        self.clock.advance(1)
        self.assertEqual(seen[-1].value.value.id, P("/#/io.l5d.fs/web"))
        self.assertIn("does not exist", self.logs.lines("linkrouter.namers.interpreters")[0])

    def test_brokenFromTheStart(self):
        self.write("dtab2", "nonsense")
        interpreter = fsInterpreter.build(FsInterpreterConfig("dtab2"), self.context())
        state = stateOf(interpreter.bind(Dtab.empty(), P("/svc/web")))
        self.assertEqual(type(state), Failed)
        self.assertIsInstance(state.exception, DtabFileError)

    def test_delegate(self):
        tree = self.successResultOf(self.interpreter.delegate(Dtab.empty(), P("/svc/web")))
        self.assertIsNotNone(tree)

    def test_missingDirectory(self):
        self.assertRaises(
            DtabFileError, fsInterpreter.build, FsInterpreterConfig("nope/dtab"), self.context()
        )


class PluginParseTests(SynchronousTestCase):
    def parse(self, text):
        providers = [
            (IInterpreterPlugin, defaultInterpreter, "t"),
            (IInterpreterPlugin, fsInterpreter, "t"),
            (INamerPlugin, fsNamer, "t"),
            (ITransformerPlugin, port, "t"),
        ]
        document = Document("t.yaml", PluginRegistry.fromProviders(providers))
        section = document.load(text)
        assert section is not None
        result = section.parseAs(IInterpreterPlugin, defaultKind="default")
        return result, [str(p) for p in document.problems]

    def test_default(self):
        result, problems = self.parse("{}")
        self.assertEqual((result.plugin, problems), (defaultInterpreter, []))

    def test_fs(self):
        result, _ = self.parse("kind: io.l5d.fs\ndtabFile: /etc/dtab")
        self.assertEqual(result.config, FsInterpreterConfig("/etc/dtab"))

    def test_fsRequiresFile(self):
        _, problems = self.parse("kind: io.l5d.fs")
        self.assertIn("dtabFile: required", problems[0])
