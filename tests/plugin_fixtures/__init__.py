"""
Out-of-tree plugin fixtures: C{site/} is laid out like a third party's
installed distribution (a module plus a C{twisted/plugins/} dropin).

L{install} copies it to a temporary directory (so that Twisted's
C{dropin.cache} is never written into the source tree) and puts it on
C{sys.path} and C{twisted.plugins.__path__} for the rest of the test;
L{environ} gives a subprocess the same view.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import twisted.plugins

SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def install(case: Any) -> str:
    """
    Install the fixture plugins for the duration of C{case}; return the
    directory they were copied to.
    """
    where = os.path.join(case.mktemp(), "site")
    shutil.copytree(SITE, where, ignore=shutil.ignore_patterns("__pycache__", "dropin.cache"))
    dropins = os.path.join(where, "twisted", "plugins")
    sys.path.insert(0, where)
    twisted.plugins.__path__.append(dropins)

    def uninstall() -> None:
        sys.path.remove(where)
        twisted.plugins.__path__.remove(dropins)
        for name in [
            n for n in sys.modules if n in ("lrfixture", "twisted.plugins.lrfixture_dropin")
        ]:
            del sys.modules[name]

    case.addCleanup(uninstall)
    return where


def environ(where: str) -> dict[str, str]:
    """
    The environment for a subprocess that sees the repository and the
    fixture plugins installed at C{where}.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([where, REPO, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def registry(case: Any) -> Any:
    """
    A registry with only the fixture plugins (no built-ins).
    """
    install(case)
    import lrfixture  # type: ignore[import-not-found]

    from linkrouter._plugins import PluginRegistry
    from linkrouter.interfaces import IInterpreterPlugin, INamerPlugin, IProtocolPlugin

    return PluginRegistry.fromProviders(
        [
            (INamerPlugin, lrfixture.staticNamer, "lrfixture.staticNamer"),
            (
                IInterpreterPlugin,
                lrfixture.configuredInterpreter,
                "lrfixture.configuredInterpreter",
            ),
            (IProtocolPlugin, lrfixture.lineProtocol, "lrfixture.lineProtocol"),
        ]
    )
