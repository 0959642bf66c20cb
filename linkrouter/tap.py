# -*- test-case-name: tests.test_service_tap -*-
"""
C{twistd linkrouter}: command-line options and the service maker.

The configuration is read and validated while the options are parsed, so
every problem is reported before the reactor starts.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import sys
from importlib.resources import files
from typing import Any

from twisted.application.service import IService, MultiService, Service
from twisted.logger import Logger
from twisted.python import usage

from linkrouter._plugins import DuplicatePluginError, PluginRegistry
from linkrouter.config import ConfigError, LinkerConfig, loadLinkerConfig, parseLinkerConfig
from linkrouter.logs import logObserver
from linkrouter.service import AdminSiteFactory, LinkerService, StartupError

log = Logger(observer=logObserver)

DEFAULT_CONFIG_NAME = "<default config>"


def defaultConfigText() -> str:
    """
    The embedded default configuration (C{linkrouter/default.yaml}).
    """
    return files("linkrouter").joinpath("default.yaml").read_text("utf-8")


def discoverPlugins() -> PluginRegistry:
    """
    The installed plugins.

    @raise usage.UsageError: two plugins claim one kind.
    """
    try:
        return PluginRegistry.discover()
    except DuplicatePluginError as e:
        raise usage.UsageError(str(e)) from None


def readConfig(source: str | None, registry: PluginRegistry) -> LinkerConfig:
    """
    Load C{source} (a file name, C{-} for standard input, or C{None} for
    the embedded default).

    @raise ConfigError: listing every problem.
    """
    if source is None:
        return parseLinkerConfig(defaultConfigText(), DEFAULT_CONFIG_NAME, registry)
    return loadLinkerConfig(source, registry)


def _leaveTLSUnloaded(source: str | None) -> None:
    """
    Keep pyOpenSSL (and cryptography) out of a process whose configuration
    asks for no TLS: Twisted's TCP transport imports them eagerly, which
    costs about 11 MB of memory for nothing.  Twisted runs without them.
    Only in a fresh process (nothing has loaded them, nor the reactor), and
    not when C{LINKROUTER_LOAD_TLS} is set (for plugins that need TLS
    without a C{tls:} key).
    """
    if "OpenSSL" in sys.modules or "twisted.internet.reactor" in sys.modules:
        return
    if os.environ.get("LINKROUTER_LOAD_TLS") or source == "-":
        return
    try:
        text = defaultConfigText() if source is None else pathlib.Path(source).read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return  # the configuration reader reports it
    if not re.search(r"\btls\s*:", text):
        sys.modules["OpenSSL"] = None  # type: ignore[assignment]


class Options(usage.Options):
    synopsis = "[-c CONFIG]"
    longdesc = (
        "Run linkrouter with a Linkerd 1.x configuration (YAML or JSON). "
        "Without -c, an embedded default configuration is used: the admin "
        "server on localhost:9990 and an HTTP router on localhost:4140."
    )
    optParameters = [
        ["config", "c", None, "Configuration file, or - for standard input."],
    ]

    def postOptions(self) -> None:
        _leaveTLSUnloaded(self["config"])
        registry = discoverPlugins()
        try:
            self["linkerConfig"] = readConfig(self["config"], registry)
        except ConfigError as e:
            raise usage.UsageError(f"invalid configuration:\n{e}") from None
        self["registry"] = registry


def _adminSiteFactory() -> AdminSiteFactory | None:
    try:
        from linkrouter.admin import makeAdminSite
    except ImportError:
        log.warn("the admin server is not available in this installation")
        return None
    return makeAdminSite


def _fail(message: str) -> None:
    log.critical("cannot start: {reason}", reason=message)
    sys.stderr.write(f"linkrouter: cannot start: {message}\n")
    raise SystemExit(1)


class _ExitOnStartupError(MultiService):
    """
    Under C{twistd}, a service that cannot start ends the process with one
    line rather than a traceback.
    """

    def startService(self) -> None:
        try:
            super().startService()
        except StartupError as e:
            _fail(str(e))


class ReloadOnHangup(Service):
    """
    SIGHUP re-reads the configuration file and applies what can change while
    running (L{LinkerService.reload}); a file that no longer parses is
    reported and changes nothing.
    """

    def __init__(
        self, linker: LinkerService, path: str, registry: PluginRegistry, reactor: Any
    ) -> None:
        self.linker = linker
        self.path = path
        self.registry = registry
        self.reactor = reactor
        self._previous: Any = None

    def startService(self) -> None:
        Service.startService(self)
        self._previous = signal.signal(
            signal.SIGHUP, lambda signum, frame: self.reactor.callFromThread(self.reload)
        )

    def stopService(self) -> None:
        Service.stopService(self)
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None

    def reload(self) -> list[str]:
        """Re-read the file and apply it; return what was said."""
        try:
            config = loadLinkerConfig(self.path, self.registry)
        except ConfigError as e:
            lines = [f"not applied: {problem}" for problem in e.problems]
        else:
            lines = self.linker.reload(config) or ["no change"]
        for line in lines:
            log.info("reload {path}: {line}", path=self.path, line=line)
        return lines


def makeService(options: dict[str, Any]) -> IService:
    from linkrouter import _reactor

    _reactor.install()
    from twisted.internet import reactor

    try:
        linker = LinkerService.build(
            options["linkerConfig"],
            reactor,
            options["registry"],
            makeAdminSite=_adminSiteFactory(),
        )
    except StartupError as e:
        _fail(str(e))
    top = _ExitOnStartupError()
    linker.setServiceParent(top)
    path = options["config"]
    if path is not None and path != "-":
        ReloadOnHangup(linker, path, options["registry"], reactor).setServiceParent(top)
    return top
