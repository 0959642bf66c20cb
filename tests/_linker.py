"""
Starting a whole router for a test: the installed plugins (discovered once),
a configuration from YAML text, and a L{LinkerService} stopped at cleanup.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from linkrouter._plugins import PluginRegistry
from linkrouter.config import LinkerConfig, parseLinkerConfig
from linkrouter.service import LinkerService

_registry: list[PluginRegistry] = []


def registry() -> PluginRegistry:
    """The installed plugins, discovered once."""
    if not _registry:
        _registry.append(PluginRegistry.discover())
    return _registry[0]


def startLinker(
    case: TestCase,
    config: str | LinkerConfig,
    plugins: PluginRegistry | None = None,
    **build: Any,
) -> LinkerService:
    """
    Build and start C{config} (YAML text, or a parsed configuration); it is
    stopped when C{case} cleans up.  C{build} goes to L{LinkerService.build}.
    """
    plugins = plugins or registry()
    if isinstance(config, str):
        config = parseLinkerConfig(config, "router.yaml", plugins)
    linker = LinkerService.build(config, reactor, plugins, **build)
    linker.startService()
    case.addCleanup(linker.stopService)
    return linker


def routerPort(linker: LinkerService, n: int = 0) -> int:
    """The port router C{n} listens on (its first server)."""
    return linker.routers[n].service.ports[0].getHost().port  # type: ignore[attr-defined,no-any-return]
