"""
Tests for L{linkrouter._plugins}: the registry and dropin discovery.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from linkrouter._plugins import DuplicatePluginError, PluginRegistry
from linkrouter.interfaces import IIdentifierPlugin, INamerPlugin, IProtocolPlugin
from tests import plugin_fixtures


class _Namer:
    def __init__(self, kind: str) -> None:
        self.kind = kind


class _Identifier:
    def __init__(self, kind: str, protocol: str) -> None:
        self.kind = kind
        self.protocol = protocol


class RegistryTests(SynchronousTestCase):
    def test_lookupByKind(self) -> None:
        fs = _Namer("io.l5d.fs")
        registry = PluginRegistry.fromProviders([(INamerPlugin, fs, "a.fs")])
        self.assertIs(registry.get(INamerPlugin, "io.l5d.fs"), fs)
        self.assertIsNone(registry.get(INamerPlugin, "io.l5d.k8s"))
        self.assertIsNone(registry.get(IProtocolPlugin, "io.l5d.fs"))
        self.assertEqual(registry.kinds(INamerPlugin), ["io.l5d.fs"])
        self.assertEqual(registry.kinds(IProtocolPlugin), [])

    def test_duplicateNamesBoth(self) -> None:
        with self.assertRaises(DuplicatePluginError) as raised:
            PluginRegistry.fromProviders(
                [
                    (INamerPlugin, _Namer("io.l5d.fs"), "twisted.plugins.one.fs"),
                    (INamerPlugin, _Namer("io.l5d.fs"), "twisted.plugins.two.myfs"),
                ]
            )
        message = str(raised.exception)
        self.assertIn("twisted.plugins.one.fs", message)
        self.assertIn("twisted.plugins.two.myfs", message)
        self.assertIn("'io.l5d.fs'", message)

    def test_sameProviderTwiceIsFine(self) -> None:
        fs = _Namer("io.l5d.fs")
        registry = PluginRegistry.fromProviders([(INamerPlugin, fs, "a"), (INamerPlugin, fs, "b")])
        self.assertEqual(registry.kinds(INamerPlugin), ["io.l5d.fs"])

    def test_identifiersKeyedByProtocol(self) -> None:
        http = _Identifier("io.l5d.header", "http")
        h2 = _Identifier("io.l5d.header", "h2")
        registry = PluginRegistry.fromProviders(
            [(IIdentifierPlugin, http, "x.http"), (IIdentifierPlugin, h2, "x.h2")]
        )
        self.assertIs(registry.get(IIdentifierPlugin, "io.l5d.header", "http"), http)
        self.assertIs(registry.get(IIdentifierPlugin, "io.l5d.header", "h2"), h2)
        self.assertEqual(registry.kinds(IIdentifierPlugin, "h2"), ["io.l5d.header"])
        self.assertEqual(registry.kinds(IIdentifierPlugin, "thrift"), [])
        self.assertEqual(len(registry.everything()), 2)


class DiscoveryTests(SynchronousTestCase):
    def test_outOfTreeNamerDiscovered(self) -> None:
        """
        A plugin installed outside the source tree, as a C{twisted/plugins}
        dropin on C{sys.path}, is found by L{PluginRegistry.discover}.
        """
        plugin_fixtures.install(self)
        registry = PluginRegistry.discover()
        namer = registry.get(INamerPlugin, "test.static")
        self.assertIsNotNone(namer)
        self.assertEqual(type(namer).__module__, "lrfixture")
        self.assertIn("test.line", registry.kinds(IProtocolPlugin))

    def test_subprocessSeesInstalledPlugin(self) -> None:
        """
        C{linkrouter plugins} lists a plugin from a directory on
        C{PYTHONPATH}; discovery never writes into the source tree.
        """
        where = plugin_fixtures.install(self)
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from linkrouter.cli import main; sys.exit(main(['plugins']))",
            ],
            env=plugin_fixtures.environ(where),
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("  test.static\n", result.stdout)
        self.assertIn("  test.line\n", result.stdout)
        self.assertFalse(
            os.path.exists(os.path.join(plugin_fixtures.SITE, "twisted", "plugins", "dropin.cache"))
        )
