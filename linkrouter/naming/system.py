# -*- test-case-name: tests.test_naming_system -*-
"""
The system namers under C{/$/}: C{inet}, C{fixedinet}, C{fail}, C{nil} and
Linkerd's rewriting namers (C{io.buoyant.rinet}, C{io.buoyant.hostportPfx},
C{io.buoyant.porthostPfx}, C{io.buoyant.http.*}).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IHostResolution,
    IReactorPluggableNameResolver,
    IResolutionReceiver,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from .addr import ADDR_NEG, ADDR_PENDING, Addr, AddrBound, Address, AddrFailed, Bound
from .nametree import EMPTY, FAIL, NEG, Leaf, NameTree
from .path import Path
from .var import Var

Resolver = Callable[[str], "Deferred[Sequence[str]]"]
"""Resolves a host name to IP address strings without blocking."""

Name = Path | Bound
"""A name tree leaf as namers return it: a path to bind further, or bound."""


class UnknownNamer(Exception):
    """A C{/$/<kind>} path names no system namer."""


def reactorResolver(reactor: IReactorPluggableNameResolver) -> Resolver:
    """A L{Resolver} using C{reactor.nameResolver} (IPv4 and IPv6)."""

    def resolve(host: str) -> Deferred[Sequence[str]]:
        d: Deferred[Sequence[str]] = Deferred()
        found: list[str] = []

        @implementer(IResolutionReceiver)
        class Receiver:
            def resolutionBegan(self, resolution: IHostResolution) -> None:
                pass

            def addressResolved(self, address: Any) -> None:
                if address.host not in found:
                    found.append(address.host)

            def resolutionComplete(self) -> None:
                d.callback(found)

        reactor.nameResolver.resolveHostName(Receiver(), host, 0, [IPv4Address, IPv6Address])
        return d

    return resolve


def _literalIP(host: str) -> str | None:
    """
    C{host} as an IP address if it is one, including the short IPv4 forms
    that Linkerd configurations use (C{127.1}); C{None} for a host name.
    """
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host and all(part.isdigit() for part in host.split(".")) and host.count(".") < 3:
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _javaInt(text: str) -> int | None:
    """C{text} as Java's C{Integer.parseInt} reads it, or None."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    value = int(text)
    return value if -(2**31) <= value < 2**31 else None


def _utf8(elem: bytes) -> str:
    return elem.decode("utf-8", "replace")


def _path(*elems: str) -> Path | None:
    """A path of text elements, or None if one is empty."""
    if not all(elems):
        return None
    return Path(*[e.encode("utf-8") for e in elems])


def _javaSplit(text: str, sep: str) -> list[str]:
    parts = text.split(sep)
    while parts and not parts[-1]:
        parts.pop()
    return parts


_DNS_LABEL = re.compile(r"[a-z0-9][-a-z0-9]*[a-z0-9]?")
_HOST = re.compile(r"[A-Za-z0-9.:_-]+")


def _hostColonPort(text: str) -> tuple[str, str] | None:
    parts = _javaSplit(text, ":")
    if len(parts) == 2 and _DNS_LABEL.fullmatch(parts[1]) and len(parts[1]) <= 63:
        return parts[0], parts[1]
    return None


def _subdomain(domain: str, hostname: str) -> str | None:
    idx = hostname.find(":")
    host = hostname[:idx] if idx > 0 else hostname
    sfx = "." + domain
    return host[: -len(sfx)] if host.endswith(sfx) and len(host) > len(sfx) else None


def _hostportPfx(args: Sequence[str]) -> Sequence[str] | None:
    hp = _hostColonPort(args[1])
    return None if hp is None else (args[0], hp[0], hp[1])


def _porthostPfx(args: Sequence[str]) -> Sequence[str] | None:
    hp = _hostColonPort(args[1])
    return None if hp is None else (args[0], hp[1], hp[0])


def _domainToPathPfx(args: Sequence[str]) -> Sequence[str] | None:
    if not _HOST.fullmatch(args[1]):
        return None
    return (args[0], *reversed(_javaSplit(args[1], ".")))


def _subdomainOfPfx(args: Sequence[str]) -> Sequence[str] | None:
    domain, pfx, host = args
    if not (_HOST.fullmatch(domain) and _HOST.fullmatch(host)):
        return None
    sub = _subdomain(domain, host)
    return None if sub is None else (pfx, sub)


_REWRITERS: dict[bytes, tuple[int, Callable[[Sequence[str]], Sequence[str] | None]]] = {
    b"io.buoyant.hostportPfx": (2, _hostportPfx),
    b"io.buoyant.porthostPfx": (2, _porthostPfx),
    b"io.buoyant.http.domainToPathPfx": (2, _domainToPathPfx),
    b"io.buoyant.http.subdomainOfPfx": (3, _subdomainOfPfx),
}


class SystemNamer:
    """
    Looks up C{/$/...} paths (the full path, C{/$} included).  Addresses of
    host names are resolved with C{resolver} while observed.
    """

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver
        self.inetName = lru_cache(maxsize=4096)(self._inetName)

    def _inetName(self, host: str, port: int) -> Var[Addr]:
        if not 0 <= port <= 65535:
            return Var(AddrFailed(f"port out of range: {port}"))
        if not host:
            host = "127.0.0.1"
        literal = _literalIP(host)
        if literal is not None:
            return Var(AddrBound(frozenset((Address(literal, port),))))
        resolver = self._resolver

        def start(update: Callable[[Addr], None]) -> Callable[[], None]:
            active = [True]

            def resolved(ips: Sequence[str]) -> None:
                if active[0]:
                    addrs = frozenset(Address(ip, port) for ip in ips)
                    update(AddrBound(addrs) if addrs else ADDR_NEG)

            def failed(failure: Failure) -> None:
                if active[0]:
                    update(AddrFailed(f"{host}: {failure.getErrorMessage()}"))

            update(ADDR_PENDING)
            d = resolver(host)
            d.addCallbacks(resolved, failed)

            def stop() -> None:
                active[0] = False
                d.cancel()

            return stop

        return Var.watched(ADDR_PENDING, start)

    def _bound(self, host: str, port: int, id: Path, residual: Path) -> NameTree[Name]:
        return Leaf(Bound(id, self.inetName(host, port), residual))

    def lookup(self, path: Path) -> NameTree[Name]:
        """
        @raise UnknownNamer: for C{/$/<kind>} with an unknown kind.
        """
        elems = path.elems
        if len(elems) < 2 or elems[0] != b"$":
            return NEG
        kind = elems[1]
        if kind in (b"inet", b"fixedinet"):
            if len(elems) >= 4 and (port := _javaInt(_utf8(elems[3]))) is not None:
                return self._bound(_utf8(elems[2]), port, path.take(4), path.drop(4))
            if len(elems) >= 3 and (port := _javaInt(_utf8(elems[2]))) is not None:
                return self._bound("", port, path.take(3), path.drop(3))
        if kind == b"fail":
            return FAIL
        if kind == b"nil":
            return EMPTY
        if kind == b"io.buoyant.rinet":
            if len(elems) < 4:
                return NEG
            port = _javaInt(_utf8(elems[2]))
            id = path.take(4)
            if port is None:
                return Leaf(
                    Bound(id, Var(AddrFailed(f"invalid port: {_utf8(elems[2])}")), path.drop(4))
                )
            return self._bound(_utf8(elems[3]), port, id, path.drop(4))
        rewriter = _REWRITERS.get(kind)
        if rewriter is None:
            raise UnknownNamer(f"Unknown namer: {_utf8(kind)} for path: {path.show}")
        n, rewrite = rewriter
        rest = path.drop(2)
        if len(rest) < n:
            return NEG
        out = rewrite([_utf8(e) for e in rest.elems[:n]])
        rewritten = None if out is None else _path(*out)
        return NEG if rewritten is None else Leaf(rewritten + rest.drop(n))
