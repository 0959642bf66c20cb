# -*- test-case-name: tests.test_namers_dnssrv -*-
"""
The C{io.l5d.dnssrv} namer: C{/#/<prefix>/<name>/<rest...>} binds to the
targets of the DNS SRV records of C{<name>}, looked up again every
C{refreshIntervalSeconds} while a binding uses it.

A name not ending in C{.} is relative to C{domain}.  A name that does not
exist (NXDOMAIN) or has no records is negative.  When a lookup fails for
another reason (timeout, server failure), the last addresses found are
kept and the C{stale} gauge counts the names served that way; a name that
never resolved is negative, so that a dtab can fall back.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from typing import Any, cast

import attrs
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.names import dns
from twisted.names.error import DNSNameError
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from linkrouter.config import Section
from linkrouter.interfaces import INamer, INamerPlugin, IStatsReceiver
from linkrouter.logs import logObserver
from linkrouter.naming import (
    ADDR_NEG,
    ADDR_PENDING,
    NEG,
    PENDING,
    Activity,
    Addr,
    AddrBound,
    Address,
    AddrFailed,
    Bound,
    Leaf,
    NameTree,
    Ok,
    Path,
    State,
    Var,
)

from ._config import experimental, namerIdPrefix

_log = Logger(namespace="linkrouter.namers.dnssrv", observer=logObserver)

DEFAULT_TIMEOUT = (1, 3)
"""Seconds to wait for each try of one lookup."""


class _SrvWatch:
    """The addresses of one SRV name, looked up periodically while observed."""

    def __init__(self, namer: DnsSrvNamer, name: str) -> None:
        self.namer = namer
        self.name = name
        self.stale = False
        self.lastGood: AddrBound | None = None
        self._update: Any = None
        self._inFlight: Deferred[Any] | None = None
        self._loop: LoopingCall | None = None
        self.addr: Var[Addr] = Var.watched(cast(Addr, ADDR_PENDING), self._start)

    def _start(self, update: Any) -> Any:
        self._update = update
        self._loop = LoopingCall(self._refresh)
        self._loop.clock = self.namer.clock
        self._loop.start(self.namer.refreshInterval, now=True)
        return self._stop

    def _stop(self) -> None:
        # A lookup in flight finishes on its own; its result is then ignored.
        self._update = None
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()

    def _refresh(self) -> None:
        if self._inFlight is not None:
            return
        d = self._inFlight = self.namer.resolve(self.name)
        d.addBoth(self._settled, d)

    def _settled(self, result: frozenset[Address] | Failure, d: Deferred[Any]) -> None:
        if self._inFlight is d:
            self._inFlight = None
        if self._update is None:
            return
        if isinstance(result, Failure):
            self._failed(result)
        else:
            self._found(result)

    def _found(self, addresses: frozenset[Address]) -> None:
        if self.stale:
            _log.info("{name}: resolved again", name=self.name)
        self.stale = False
        if not addresses:
            self.namer.zeroResults.incr()
            self._update(ADDR_NEG)
            return
        self.namer.successes.incr()
        self.lastGood = AddrBound(addresses)
        self._update(self.lastGood)

    def _failed(self, failure: Failure) -> None:
        if failure.check(DNSNameError):
            self.namer.zeroResults.incr()
            self.stale = False
            self._update(ADDR_NEG)
            return
        self.namer.failures.incr()
        reason = f"{type(failure.value).__name__}: {failure.getErrorMessage()}"
        if self.lastGood is None:
            self._update(AddrFailed(f"SRV lookup of {self.name} failed: {reason}"))
        elif not self.stale:
            self.stale = True
            _log.warn(
                "{name}: SRV lookup failed ({reason}); keeping the last {count} addresses",
                name=self.name,
                reason=reason,
                count=len(self.lastGood.addresses),
            )


@implementer(INamer)
class DnsSrvNamer:
    """
    See the module docstring.

    @param resolver: a L{twisted.names} resolver (C{lookupService},
        C{getHostByName}).
    @param clock: schedules refreshes.
    @param stats: receives C{lookup_successes_total},
        C{lookup_failures_total}, C{lookup_zero_results_total},
        C{unknown_srv_hosts_results_total} and the C{stale} gauge.
    """

    def __init__(
        self,
        idPrefix: Path,
        resolver: Any,
        clock: Any,
        stats: IStatsReceiver,
        refreshInterval: float = 5.0,
        domain: str = ".",
        timeout: Sequence[float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.idPrefix = idPrefix
        self.resolver = resolver
        self.clock = clock
        self.refreshInterval = refreshInterval
        self.domain = domain.strip(".")
        self.timeout = tuple(timeout)
        self.successes = stats.counter("lookup_successes_total")
        self.failures = stats.counter("lookup_failures_total")
        self.zeroResults = stats.counter("lookup_zero_results_total")
        self.badHosts = stats.counter("unknown_srv_hosts_results_total")
        self._watches: dict[str, _SrvWatch] = {}
        stats.addGauge(("stale",), lambda: float(sum(w.stale for w in self._watches.values())))

    def absolute(self, name: str) -> str:
        """C{name} made absolute with the configured domain (no final dot)."""
        if name.endswith(".") or not self.domain:
            return name.rstrip(".")
        return f"{name}.{self.domain}"

    def lookup(self, path: Path) -> Activity[NameTree[Any]]:  # type: ignore[override]
        if not path.elems:
            return Activity.value(NEG)
        name = self.absolute(os.fsdecode(path.elems[0]))
        if not name:
            return Activity.value(NEG)
        watch = self._watches.get(name)
        if watch is None:
            watch = self._watches[name] = _SrvWatch(self, name)
        bound = Bound(self.idPrefix + path.take(1), watch.addr, path.drop(1))

        def state(addr: Addr) -> State[NameTree[Any]]:
            if addr is ADDR_PENDING:
                return PENDING
            if type(addr) is AddrBound:
                return Ok(Leaf(bound))
            return Ok(NEG)

        return Activity(watch.addr.map(state))

    @inlineCallbacks
    def resolve(self, name: str) -> Any:
        """The addresses of C{name}'s SRV targets (a Deferred)."""
        answers, _, additional = yield self.resolver.lookupService(name, timeout=self.timeout)
        known: dict[str, str] = {}
        for rr in additional:
            if rr.type in (dns.A, dns.AAAA):
                known.setdefault(str(rr.name).lower(), rr.payload.dottedQuad())
        targets = [
            (str(rr.payload.target), rr.payload.port) for rr in answers if rr.type == dns.SRV
        ]
        missing = sorted({t for t, _ in targets if t.lower() not in known and not _isIP(t)})
        results = yield DeferredList(
            [self.resolver.getHostByName(t, timeout=self.timeout) for t in missing],
            consumeErrors=True,
        )
        for target, (ok, ip) in zip(missing, results, strict=True):
            if ok:
                known[target.lower()] = ip
            else:
                self.badHosts.incr()
                _log.warn("{name}: unknown SRV target {target}", name=name, target=target)
        return frozenset(
            Address(target if _isIP(target) else known[target.lower()], port)
            for target, port in targets
            if _isIP(target) or target.lower() in known
        )


def _isIP(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _port(text: str) -> int:
    """C{text} as a port number if it is one to five ASCII digits, else C{-1}."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 5 else -1


def parseServer(text: str) -> tuple[str, int] | None:
    """C{ip}, C{ip:port} or C{[ipv6]:port} as C{(ip, port)}, or C{None}."""
    host, port = text, 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port = _port(rest[1:]) if rest else 53
    elif text.count(":") == 1:
        host, _, portText = text.partition(":")
        port = _port(portText)
    if not _isIP(host) or not 0 < port <= 65535:
        return None
    return host, port


@attrs.frozen
class DnsSrvConfig:
    idPrefix: Path
    refreshIntervalSeconds: int = 5
    domain: str = "."
    dnsHosts: tuple[tuple[str, int], ...] = ()


@implementer(IPlugin, INamerPlugin)
class DnsSrvNamerPlugin:
    kind = "io.l5d.dnssrv"
    defaultPrefix = "/io.l5d.dnssrv"

    def parseConfig(self, section: Section) -> DnsSrvConfig:  # type: ignore[override]
        experimental(section, self.kind, required=True)
        interval = section.get("refreshIntervalSeconds", int, 5)
        if interval is not None and interval <= 0:
            section.error("must be a positive number of seconds", "refreshIntervalSeconds")
        hosts = []
        for text in section.get("dnsHosts", list, []) or []:
            server = parseServer(text) if isinstance(text, str) else None
            if server is None:
                section.error(
                    f"{text!r} is not an IP address with an optional :port "
                    "(host names are not supported)",
                    "dnsHosts",
                )
            else:
                hosts.append(server)
        return DnsSrvConfig(
            namerIdPrefix(section, self.defaultPrefix),
            interval or 5,
            section.get("domain", str, ".") or ".",
            tuple(hosts),
        )

    def build(self, config: DnsSrvConfig, context: Any) -> DnsSrvNamer:  # type: ignore[override]
        from twisted.names import client

        reactor = context.reactor
        if config.dnsHosts:
            resolver = client.Resolver(servers=list(config.dnsHosts), reactor=reactor)
        else:
            resolver = client.Resolver(resolv="/etc/resolv.conf", reactor=reactor)
        return DnsSrvNamer(
            config.idPrefix,
            resolver,
            reactor,
            context.stats,
            config.refreshIntervalSeconds,
            config.domain,
        )


dnsSrvNamer = DnsSrvNamerPlugin()
