"""
L{linkrouter._reactor}: the epoll reactor without the per-event log
context, which C{twistd linkrouter} installs and this suite runs on.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.internet import reactor
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from linkrouter import _reactor

from .test_transport import closingClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class InstallTests(SynchronousTestCase):
    def test_suiteRunsOnIt(self) -> None:
        """The suite's reactor is the one the router runs on."""
        self.assertIs(type(reactor), _reactor.EPollReactor)

    def test_keepsAnInstalledReactor(self) -> None:
        """With a reactor installed already, L{install} leaves it be."""
        self.assertFalse(_reactor.install())
        from twisted.internet import reactor as after

        self.assertIs(after, reactor)

    def test_twistdInstallsIt(self) -> None:
        """
        The service maker installs it when no reactor is installed, and
        keeps one that C{twistd --reactor} chose.
        """
        script = (
            "import sys;"
            ""
            "from twisted.scripts import twistd;"
            "o = twistd.ServerOptions(); o.parseOptions(sys.argv[1:]);"
            "from linkrouter.tap import makeService;"
            "makeService(o.subOptions);"
            "from twisted.internet import reactor;"
            "print(type(reactor).__module__, type(reactor).__name__)"
        )

        def reactorOf(*options: str) -> str:
            out = subprocess.run(
                [sys.executable, "-c", script, *options, "linkrouter"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
                env=dict(os.environ, PYTHONPATH=ROOT),
            )
            return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr

        self.assertEqual(reactorOf(), "linkrouter._reactor EPollReactor")
        self.assertEqual(reactorOf("--reactor=poll"), "twisted.internet.pollreactor PollReactor")


class _Broken(Protocol):
    def dataReceived(self, data: bytes) -> None:
        raise RuntimeError("a bug in a protocol")


class DispatchTests(TestCase):
    async def test_errorInAnEventIsLoggedAndClosesTheConnection(self) -> None:
        """
        An exception from a protocol's event handler is logged and the
        connection closed, as on Twisted's own reactor: dispatching without
        the log context loses no error.
        """
        client, lost = await closingClient(self, _Broken)
        assert client.transport is not None
        client.transport.write(b"boom")
        await lost
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
