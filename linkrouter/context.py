# -*- test-case-name: tests.test_service -*-
"""
What every plugin's C{build(config, context)} receives, and the small
protocol routers use to drain gracefully.
"""

from __future__ import annotations

from typing import Any

import attrs
from zope.interface import Attribute, Interface

from linkrouter._plugins import PluginRegistry
from linkrouter.interfaces import IInterpreter, INamer, IStatsReceiver
from linkrouter.naming import Path


@attrs.frozen
class BuildContext:
    """
    Everything a plugin may need to build its runtime object.

    @ivar reactor: the reactor (also the clock) to use; never import the
        global one.
    @ivar stats: where to record metrics, already scoped for the component
        being built (C{rt/<label>} for a router, C{namer/<prefix>} for a
        namer).
    @ivar registry: the plugin registry, to build nested plugins.
    @ivar baseDir: the directory the router was started in; relative file
        names in the configuration (C{rootDir}, C{dtabFile}) are relative
        to it.
    @ivar namers: the configured namers as C{(full prefix, namer)} pairs,
        e.g. C{(Path.read("/#/io.l5d.fs"), namer)}, in configuration order
        (for interpreters).
    @ivar interpreter: the router's interpreter (for protocols and
        identifiers), or C{None} while building namers and interpreters.
    @ivar label: the router's label, or C{None} outside a router.
    """

    reactor: Any
    stats: IStatsReceiver
    registry: PluginRegistry
    baseDir: str
    namers: tuple[tuple[Path, INamer], ...] = ()
    interpreter: IInterpreter | None = None
    label: str | None = None


class IDrainable(Interface):
    """
    A router service that can stop gracefully.  The router provided by an
    L{linkrouter.interfaces.IProtocolPlugin} should provide it; its
    C{startService} must listen synchronously and raise (e.g.
    L{twisted.internet.error.CannotListenError}) if it cannot.
    """

    inFlight = Attribute("The number of requests being served right now (an C{int}).")

    def drain() -> object:
        """
        Stop accepting connections and requests at once; return a
        C{Deferred} that fires once no request is in flight.  Cancelling the
        Deferred (when the grace period is over) must not raise;
        C{stopService} then closes whatever is left.
        """
