"""
Tests for the C{linkrouter} console script and C{twistd linkrouter}.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from linkrouter import tap
from linkrouter.cli import main
from tests import plugin_fixtures


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), out, err)
    return status, out.getvalue(), err.getvalue()


class CheckTests(SynchronousTestCase):
    def test_okAndBad(self) -> None:
        plugin_fixtures.install(self)
        good, bad = self.mktemp(), self.mktemp()
        with open(good, "w") as f:
            f.write("routers: [{protocol: test.line, interpreter: {kind: test.configured}}]\n")
        with open(bad, "w") as f:
            f.write("routers: [{protocol: test.line, servers: [{port: -1}]}]\nextra: 1\n")
        status, out, err = run("check", good, bad)
        self.assertEqual(status, 1)
        self.assertEqual(out, f"{good}: ok\n")
        self.assertEqual(
            err.splitlines(),
            [
                f"{bad}:1:50: routers[0].servers[0].port: must be a port number (0-65535)",
                f"{bad}:2:1: extra: unknown key",
            ],
        )
        self.assertNotIn("Traceback", err)

    def test_unreadable(self) -> None:
        status, _, err = run("check", os.path.join(self.mktemp(), "missing.yaml"))
        self.assertEqual(status, 1)
        self.assertIn("missing.yaml: cannot read the configuration: No such file or directory", err)

    def test_plugins(self) -> None:
        plugin_fixtures.install(self)
        status, out, _ = run("plugins")
        self.assertEqual(status, 0)
        self.assertIn("IProtocolPlugin:\n", out)
        self.assertIn("  test.line\n", out)

    def test_delegateBadDtab(self) -> None:
        status, _, err = run("delegate", "--dtab", "/a=>", "/svc/x")
        self.assertEqual(status, 2)
        self.assertIn("linkrouter delegate: Invalid dtab", err)


class TapTests(SynchronousTestCase):
    def test_optionsReportProblems(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("routers: [{protocol: nope}]\nadmin: {port: x}\n")
        options = tap.Options()
        with self.assertRaises(usage.UsageError) as raised:
            options.parseOptions(["-c", path])
        lines = str(raised.exception).splitlines()
        self.assertEqual(lines[0], "invalid configuration:")
        self.assertEqual(len(lines), 3)

    def test_defaultConfigOnlyLacksPlugins(self) -> None:
        """
        The embedded default configuration is valid but for plugins that
        may not be installed yet.
        """
        options = tap.Options()
        try:
            options.parseOptions([])
        except usage.UsageError as e:
            problems = str(e).splitlines()[1:]
            self.assertTrue(all("not supported" in p for p in problems), problems)
        else:
            self.assertEqual(options["linkerConfig"].routers[0].servers[0].port, 4140)

    def test_twistdListsLinkrouter(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "twisted", "--help"],
            cwd=plugin_fixtures.REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertIn("linkrouter", result.stdout)
