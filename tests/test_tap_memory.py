"""
A fresh process whose configuration asks for no TLS runs without loading
pyOpenSSL (Twisted's TCP transport would load it eagerly).
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = """
import sys
from linkrouter.tap import Options
options = Options()
options.parseOptions(sys.argv[1:])
from twisted.internet import reactor
port = reactor.listenTCP(0, __import__("twisted.internet.protocol").internet.protocol.Factory())
port.stopListening()
print("OpenSSL loaded:", sys.modules.get("OpenSSL") is not None)
"""


class LeanStartTests(TestCase):
    def probe(self, *args: str, **env: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", PROBE, *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT, **env},
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout.strip()

    def test_defaultConfigWithoutTLS(self) -> None:
        self.assertEqual(self.probe(), "OpenSSL loaded: False")

    def test_optOut(self) -> None:
        self.assertEqual(self.probe(LINKROUTER_LOAD_TLS="1"), "OpenSSL loaded: True")
