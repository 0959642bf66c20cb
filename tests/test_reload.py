"""
Tests for configuration reload (SIGHUP): a changed dtab applies to new
requests at once; a broken file or a change that needs a restart is said,
and changes nothing.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from linkrouter.config import loadLinkerConfig
from linkrouter.tap import ReloadOnHangup

from ._linker import registry
from .test_http_router import Backend, RouterCase, startRouter

CONFIG = """
routers:
- protocol: http
  label: web
  dtab: /svc/* => {dst};
  servers:
  - port: 0
"""


class ReloadTests(RouterCase):
    def write(self, text: str) -> None:
        with open(self.path, "w") as f:
            f.write(text)

    def start(self, dst: str) -> Any:
        self.path = os.path.abspath(self.mktemp())
        self.write(CONFIG.format(dst=dst))
        plugins = registry()
        router = startRouter(self, loadLinkerConfig(self.path, plugins), plugins)
        self.reloader = ReloadOnHangup(router.linker, self.path, plugins, reactor)
        return router

    @inlineCallbacks
    def test_dtabApplies(self) -> Any:
        """
        After the file's dtab changes, a reload sends new requests where the
        new dtab says; the admin view of the dtab follows.
        """
        a, b = Backend(self, "A"), Backend(self, "B")
        router = self.start(a.inet)
        answer = yield self.request(router)
        self.assertEqual(answer.body, b"A\n")
        self.write(CONFIG.format(dst=b.inet))
        said = self.reloader.reload()
        self.assertEqual(said, [f"router web: dtab is now /svc/*=>{b.inet}"])
        answer = yield self.request(router)
        self.assertEqual(answer.body, b"B\n")
        self.assertEqual(router.linker.routers[0].dtab.show, f"/svc/*=>{b.inet}")

    @inlineCallbacks
    def test_brokenFileChangesNothing(self) -> Any:
        """
        A file that no longer parses is reported and the router keeps its
        dtab.
        """
        a = Backend(self, "A")
        router = self.start(a.inet)
        self.write("routers: [{protocol: http, dtab: '/svc/* =>'}]\n")
        said = self.reloader.reload()
        self.assertTrue(said and all(line.startswith("not applied: ") for line in said), said)
        self.assertIn("dtab", said[0])
        answer = yield self.request(router)
        self.assertEqual(answer.body, b"A\n")

    def test_restartNeeded(self) -> None:
        """
        Changes that cannot apply while running are said, one line each.
        """
        a = Backend(self, "A")
        self.start(a.inet)
        self.write(
            CONFIG.format(dst=a.inet).replace(
                "- port: 0", "- port: 0\n    maxConcurrentRequests: 5"
            )
            + "admin:\n  port: 9999\n"
        )
        said = self.reloader.reload()
        self.assertEqual(
            said,
            [
                "admin changed: restart to apply",
                "router web: settings besides dtab changed: restart to apply",
            ],
        )
