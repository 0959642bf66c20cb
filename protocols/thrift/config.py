# -*- test-case-name: tests.test_thrift_plugin -*-
"""
The C{thrift} protocol's configuration keys (Linkerd's, plus a size limit).

Router: C{thriftMethodInDst} (default false), C{thriftProtocol} (C{binary}
or C{compact}; the default for the router's servers and clients).
Servers and clients: C{thriftFramed} (default true), C{thriftProtocol},
C{thriftMaxMessageBytes} (ours: the largest frame or buffered message
accepted, default 16 MiB).  Clients: C{attemptTTwitterUpgrade} (default
false, as Linkerd).
"""

from __future__ import annotations

import attrs

from linkrouter.config import Section

from .codec import DEFAULT_MAX_MESSAGE_SIZE, ThriftProtocol


@attrs.frozen
class ThriftRouterConfig:
    methodInDst: bool = False
    protocol: ThriftProtocol = ThriftProtocol.BINARY


@attrs.frozen
class ThriftServerConfig:
    """C{protocol} C{None} means the router's."""

    framed: bool = True
    protocol: ThriftProtocol | None = None
    maxMessageBytes: int = DEFAULT_MAX_MESSAGE_SIZE

    def wireProtocol(self, router: ThriftRouterConfig | None = None) -> ThriftProtocol:
        if self.protocol is not None:
            return self.protocol
        return router.protocol if router is not None else ThriftProtocol.BINARY


@attrs.frozen
class ThriftClientConfig(ThriftServerConfig):
    attemptTTwitterUpgrade: bool = False


@attrs.frozen
class ThriftClientKeys:
    """
    The keys one C{client} entry sets (C{None}: not set there).  Matching
    C{io.l5d.static} entries are laid over each other key by key (the
    C{protocol} field of L{linkrouter.config.ClientParams} is merged that
    way), so a later entry that sets only C{requestAttemptTimeoutMs} keeps
    an earlier entry's C{thriftFramed}.  L{resolve} fills in the defaults
    for the endpoint client.
    """

    framed: bool | None = None
    protocol: ThriftProtocol | None = None
    maxMessageBytes: int | None = None
    attemptTTwitterUpgrade: bool | None = None

    def resolve(self, router: ThriftRouterConfig | None = None) -> ThriftClientConfig:
        defaults = ThriftClientConfig()
        return ThriftClientConfig(
            framed=defaults.framed if self.framed is None else self.framed,
            protocol=self.protocol or (router or ThriftRouterConfig()).protocol,
            maxMessageBytes=self.maxMessageBytes or defaults.maxMessageBytes,
            attemptTTwitterUpgrade=bool(self.attemptTTwitterUpgrade),
        )


def _protocol(section: Section) -> ThriftProtocol | None:
    name = section.get("thriftProtocol", str)
    if name is None:
        return None
    try:
        return ThriftProtocol(name)
    except ValueError:
        section.error(f"expected binary or compact, got {name!r}", "thriftProtocol")
        return None


def _size(section: Section) -> int | None:
    size = section.get("thriftMaxMessageBytes", int)
    if size is not None and size < 1:
        section.error("must be positive", "thriftMaxMessageBytes")
        return None
    return size


def parseRouterConfig(section: Section) -> ThriftRouterConfig:
    return ThriftRouterConfig(
        methodInDst=section.get("thriftMethodInDst", bool, False) is True,
        protocol=_protocol(section) or ThriftProtocol.BINARY,
    )


def parseServerConfig(section: Section) -> ThriftServerConfig:
    return ThriftServerConfig(
        framed=section.get("thriftFramed", bool, True) is not False,
        protocol=_protocol(section),
        maxMessageBytes=_size(section) or DEFAULT_MAX_MESSAGE_SIZE,
    )


def parseClientConfig(section: Section) -> ThriftClientKeys:
    return ThriftClientKeys(
        framed=section.get("thriftFramed", bool),
        protocol=_protocol(section),
        maxMessageBytes=_size(section),
        attemptTTwitterUpgrade=section.get("attemptTTwitterUpgrade", bool),
    )
