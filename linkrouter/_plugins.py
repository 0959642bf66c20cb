# -*- test-case-name: tests.test_plugins -*-
"""
The plugin registry: every provider of a L{linkrouter.interfaces} plugin
seam, found with L{twisted.plugin.getPlugins}, keyed by its C{kind}.

Identifier and response classifier plugins are also keyed by the protocol
they apply to, so C{io.l5d.header} may exist for both C{http} and C{h2}.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import attrs
from twisted.logger import Logger
from twisted.plugin import getCache

from linkrouter.interfaces import (
    PLUGIN_INTERFACES,
    IIdentifierPlugin,
    IKindPlugin,
    IResponseClassifierPlugin,
)
from linkrouter.logs import logObserver

_PROTOCOL_KEYED: tuple[type[IKindPlugin], ...] = (IIdentifierPlugin, IResponseClassifierPlugin)

log = Logger(observer=logObserver)

_Key = tuple[type[IKindPlugin], str | None, str]


class DuplicatePluginError(Exception):
    """
    Two providers claim the same kind for the same plugin interface.
    """


def _keyFor(iface: type[IKindPlugin], provider: object) -> _Key:
    protocol = getattr(provider, "protocol", None) if iface in _PROTOCOL_KEYED else None
    return (iface, protocol, str(getattr(provider, "kind", "")))


@attrs.frozen
class PluginRegistry:
    """
    Plugin providers by C{(interface, protocol, kind)}; C{protocol} is
    C{None} except for identifiers and response classifiers.
    """

    _providers: Mapping[_Key, object]

    @classmethod
    def fromProviders(
        cls, providers: Iterable[tuple[type[IKindPlugin], object, str]]
    ) -> PluginRegistry:
        """
        Build a registry from C{(interface, provider, origin)} triples;
        C{origin} names where the provider came from in error messages.

        @raise DuplicatePluginError: two providers share a key.
        """
        found: dict[_Key, tuple[object, str]] = {}
        for iface, provider, origin in providers:
            key = _keyFor(iface, provider)
            if key in found and found[key][0] is not provider:
                _, protocol, kind = key
                where = f" for protocol {protocol!r}" if protocol else ""
                raise DuplicatePluginError(
                    f"two {iface.__name__} providers of kind {kind!r}{where}: "
                    f"{found[key][1]} and {origin}"
                )
            found[key] = (provider, origin)
        return cls({key: provider for key, (provider, _) in found.items()})

    @classmethod
    def discover(cls, package: ModuleType | None = None) -> PluginRegistry:
        """
        Find every provider of every plugin interface in C{package}
        (default: C{twisted.plugins}, i.e. all installed dropins).  A dropin
        that fails to import is logged by Twisted and skipped.
        """
        if package is None:
            import twisted.plugins as package

        cache = getCache(package)

        def providers() -> Iterable[tuple[type[IKindPlugin], object, str]]:
            for moduleName, dropin in sorted(cache.items()):
                for plugin in dropin.plugins:
                    for iface in PLUGIN_INTERFACES:
                        try:
                            provider = iface(plugin, None)
                        except Exception:
                            log.failure(
                                "loading plugin {name} from {module}",
                                name=plugin.name,
                                module=moduleName,
                            )
                            continue
                        if provider is not None:
                            yield iface, provider, f"{dropin.moduleName}.{plugin.name}"

        return cls.fromProviders(providers())

    def get(self, iface: type[IKindPlugin], kind: str, protocol: str | None = None) -> Any:
        """
        The provider of C{kind} for C{iface} (and C{protocol}, for identifier
        and classifier plugins), or C{None}.
        """
        if iface not in _PROTOCOL_KEYED:
            protocol = None
        return self._providers.get((iface, protocol, kind))

    def kinds(self, iface: type[IKindPlugin], protocol: str | None = None) -> list[str]:
        """
        The sorted kinds registered for C{iface} (and C{protocol}).
        """
        if iface not in _PROTOCOL_KEYED:
            protocol = None
        return sorted(k for (i, p, k) in self._providers if i is iface and p == protocol)

    def everything(self) -> list[tuple[type[IKindPlugin], str | None, str, object]]:
        """
        Every registered provider as C{(interface, protocol, kind, provider)},
        in L{PLUGIN_INTERFACES} order, then by protocol and kind.
        """
        order = {iface: n for n, iface in enumerate(PLUGIN_INTERFACES)}
        return sorted(
            ((i, p, k, v) for (i, p, k), v in self._providers.items()),
            key=lambda e: (order.get(e[0], len(order)), e[1] or "", e[2]),
        )
