"""
A test case base for reading configurations with the test plugins
installed (L{tests.plugin_fixtures}): C{parse} and C{problems}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from linkrouter.config import ConfigError, LinkerConfig, parseLinkerConfig
from tests import plugin_fixtures


class ConfigCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.registry = plugin_fixtures.registry(self)

    def parse(self, text: str) -> LinkerConfig:
        return parseLinkerConfig(text, "l.yaml", self.registry)

    def problems(self, text: str) -> list[str]:
        """The lines of the problems C{text} has; it must have some."""
        with self.assertRaises(ConfigError) as raised:
            self.parse(text)
        return str(raised.exception).splitlines()
