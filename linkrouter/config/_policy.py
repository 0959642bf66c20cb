# -*- test-case-name: tests.test_config_policy -*-
"""
Client and service policy: the C{client} and C{service} sections of a
router, either one set of parameters for everything (C{io.l5d.global}) or
parameters per name prefix (C{io.l5d.static}) where every matching entry
applies and later entries win.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs

from linkrouter.config._section import REQUIRED, PluginConfig, Section
from linkrouter.interfaces import (
    IFailureAccrualPlugin,
    ILoadBalancerPlugin,
    IResponseClassifierPlugin,
)
from linkrouter.naming import Path
from linkrouter.tls import ClientTLS, parseClientTLS

P = TypeVar("P")

GLOBAL = "io.l5d.global"
STATIC = "io.l5d.static"


def nonNegative(section: Section, key: str, type: type[Any] = int, default: Any = None) -> Any:
    """
    A number under C{key} that must not be negative.
    """
    value = section.get(key, type, default)
    if value is not None and value < 0:
        section.error("must not be negative", key)
        return None
    return value


@attrs.frozen
class PrefixPattern:
    """
    A C{prefix} of a static client or service configuration: a path whose
    segments may be C{*} (any one segment) or contain C{{name}} captures.
    """

    text: str
    _segments: tuple[re.Pattern[str], ...]

    @classmethod
    def read(cls, text: str) -> PrefixPattern:
        """
        @raise ValueError: if C{text} is not a pattern.
        """
        if not text.startswith("/"):
            raise ValueError("a prefix must start with '/'")
        parts = [p for p in text.split("/")[1:] if p] if text != "/" else []
        if len(parts) != len(text.rstrip("/").split("/")[1:]):
            raise ValueError("a prefix must not have empty segments")
        return cls(text, tuple(_segmentRegex(p) for p in parts))

    def match(self, path: Path) -> dict[str, str] | None:
        """
        The captured variables if C{path} starts with this pattern, else
        C{None}.
        """
        elems = [e.decode("utf-8", "replace") for e in path.elems]
        if len(elems) < len(self._segments):
            return None
        captured: dict[str, str] = {}
        for regex, elem in zip(self._segments, elems, strict=False):
            m = regex.fullmatch(elem)
            if m is None:
                return None
            captured.update(m.groupdict())
        return captured


_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _segmentRegex(segment: str) -> re.Pattern[str]:
    if segment == "*":
        return re.compile(r".*")
    pieces, last = [], 0
    for m in _CAPTURE.finditer(segment):
        pieces.append(re.escape(segment[last : m.start()]))
        pieces.append(f"(?P<{m.group(1)}>.*)")
        last = m.end()
    pieces.append(re.escape(segment[last:]))
    try:
        return re.compile("".join(pieces))
    except re.error as e:  # the same capture twice in one segment
        raise ValueError(f"bad segment {segment!r}: {e}") from None


KEY_BY_KEY = "linkrouter.config.keyByKey"
"""
Metadata key of an attrs field whose value L{merge} lays over the old one
key by key too, rather than replacing it whole: the C{protocol} field of
L{ClientParams} and L{ServiceParams}, whose keys sit beside the generic ones
in a configuration entry.
"""


def merge(old: Any, new: Any) -> Any:
    """
    Lay C{new} over C{old}: attrs values field by field (a C{None} field
    keeps the old one), anything else replaced unless C{new} is C{None}.

    A field's value is replaced whole (a later entry's C{socketOptions}
    replaces an earlier one's), except in a field marked L{KEY_BY_KEY},
    which is merged in turn by this same rule.
    """
    if new is None:
        return old
    if old is None or type(old) is not type(new) or not attrs.has(type(new)):
        return new
    changes = {}
    for f in attrs.fields(type(new)):
        value = getattr(new, f.name)
        if value is None:
            continue
        if f.metadata.get(KEY_BY_KEY):
            value = merge(getattr(old, f.name), value)
        changes[f.alias] = value
    return attrs.evolve(old, **changes)


@attrs.frozen
class PrefixedPolicy(Generic[P]):
    """
    Parameters by name prefix: L{forPath} lays every matching entry over
    C{base}, in order.  A global policy is one entry with prefix C{/}.
    """

    base: P
    entries: tuple[tuple[PrefixPattern, P], ...]

    def forPath(self, path: Path) -> P:
        result = self.base
        for pattern, params in self.entries:
            captured = pattern.match(path)
            if captured is not None:
                if captured and isinstance(params, ClientParams):
                    params = params.withCaptures(captured)  # type: ignore[assignment]
                result = merge(result, params)
        return result


def parsePolicy(
    section: Section, base: P, parseParams: Callable[[Section], P]
) -> PrefixedPolicy[P]:
    """
    Parse a C{client} or C{service} section of either kind.
    """
    kind = section.get("kind", str, GLOBAL)
    if kind == GLOBAL:
        return PrefixedPolicy(base, ((PrefixPattern.read("/"), parseParams(section)),))
    if kind != STATIC:
        section.error(f"kind {kind!r} is not supported (supported: {GLOBAL}, {STATIC})", "kind")
        section.readAll()
        return PrefixedPolicy(base, ())
    entries = []
    for entry in section.sections("configs"):
        text = entry.get("prefix", str, REQUIRED)
        params = parseParams(entry)
        if text is None:
            continue
        try:
            entries.append((PrefixPattern.read(text), params))
        except ValueError as e:
            entry.error(str(e), "prefix")
    if not section.has("configs"):
        section.get("configs", list, REQUIRED)
    return PrefixedPolicy(base, tuple(entries))


@attrs.frozen
class RetryBudget:
    """
    Linkerd's retry (and requeue) budget.
    """

    minRetriesPerSec: int = 10
    percentCanRetry: float = 0.2
    ttlSecs: int = 10


def _inRange(section: Section, key: str, type: type[Any], low: Any, high: Any) -> Any:
    """
    A number under C{key} between C{low} and C{high} inclusive, or C{None}
    (after a problem) if it is outside them or absent.
    """
    value = section.get(key, type)
    if value is not None and not low <= value <= high:
        section.error(f"must be between {low} and {high}, not {value}", key)
        return None
    return value


def parseBudget(section: Section) -> RetryBudget:
    """
    A C{requeueBudget} or C{retries.budget} section.  The limits are
    Finagle's, which L{linkrouter.client.budget.RetryBudget} enforces too:
    C{ttlSecs} 1 to 60, C{minRetriesPerSec} at least 0, C{percentCanRetry}
    0 to 1000 (a fraction: 0.2 is 20%).  A value outside them is a problem,
    so that a configuration never starts with a budget that cannot be
    built.
    """
    d = RetryBudget()
    values = {
        "minRetriesPerSec": nonNegative(section, "minRetriesPerSec", int),
        "percentCanRetry": _inRange(section, "percentCanRetry", float, 0.0, 1000.0),
        "ttlSecs": _inRange(section, "ttlSecs", int, 1, 60),
    }
    return attrs.evolve(d, **{k: v for k, v in values.items() if v is not None})


@attrs.frozen
class Backoff:
    """
    A retry backoff: C{constant} (C{minMs == maxMs}) or C{jittered}
    (decorrelated jitter between C{minMs} and C{maxMs}).
    """

    kind: str = "constant"
    minMs: int = 0
    maxMs: int = 0


def parseBackoff(section: Section) -> Backoff:
    kind = section.get("kind", str, REQUIRED)
    if kind == "constant":
        ms = nonNegative(section, "ms", int, 0) or 0
        return Backoff("constant", ms, ms)
    if kind == "jittered":
        low = nonNegative(section, "minMs", int, REQUIRED)
        high = nonNegative(section, "maxMs", int, REQUIRED)
        if low is not None and high is not None and low > high:
            section.error("minMs must not be greater than maxMs", "minMs")
        return Backoff("jittered", low or 0, high or 0)
    if kind is not None:
        section.error(
            f"backoff kind {kind!r} is not supported (supported: constant, jittered)", "kind"
        )
        section.readAll()
    return Backoff()


@attrs.frozen
class Retries:
    budget: RetryBudget = attrs.field(factory=RetryBudget)
    backoff: Backoff = attrs.field(factory=Backoff)


@attrs.frozen
class SocketOptions:
    """
    Socket options of a server (or client) socket; C{None} means the
    operating system's default.
    """

    noDelay: bool = True
    reuseAddr: bool = True
    reusePort: bool = False
    keepAlive: bool | None = None
    readTimeoutMs: int | None = None
    writeTimeoutMs: int | None = None
    backlog: int | None = None


def parseSocketOptions(section: Section) -> SocketOptions:
    d = SocketOptions()
    return SocketOptions(
        noDelay=bool(section.get("noDelay", bool, d.noDelay)),
        reuseAddr=bool(section.get("reuseAddr", bool, d.reuseAddr)),
        reusePort=bool(section.get("reusePort", bool, d.reusePort)),
        keepAlive=section.get("keepAlive", bool),
        readTimeoutMs=nonNegative(section, "readTimeoutMs"),
        writeTimeoutMs=nonNegative(section, "writeTimeoutMs"),
        backlog=nonNegative(section, "backlog"),
    )


@attrs.frozen
class Session:
    """
    Connection lifetime limits (C{serverSession}, C{clientSession}); C{None}
    is forever.
    """

    idleTimeMs: int | None = None
    lifeTimeMs: int | None = None


def parseSession(section: Section) -> Session:
    return Session(nonNegative(section, "idleTimeMs"), nonNegative(section, "lifeTimeMs"))


@attrs.frozen
class HostConnectionPool:
    """
    Per-endpoint connection pool limits; C{None} is unlimited (or forever).
    """

    minSize: int = 0
    maxSize: int | None = None
    idleTimeMs: int | None = None
    maxWaiters: int | None = None


def parsePool(section: Section) -> HostConnectionPool:
    pool = HostConnectionPool(
        nonNegative(section, "minSize") or 0,
        nonNegative(section, "maxSize"),
        nonNegative(section, "idleTimeMs"),
        nonNegative(section, "maxWaiters"),
    )
    if pool.maxSize is not None and pool.minSize > pool.maxSize:
        section.error("minSize must not be greater than maxSize", "minSize")
    return pool


def _optional(section: Section, key: str, parse: Callable[[Section], P]) -> P | None:
    return parse(section.section(key)) if section.has(key) else None


@attrs.frozen
class ClientParams:
    """
    Parameters of the clients a router makes.  In a static entry, C{None}
    means "not set here"; in L{PrefixedPolicy.forPath}'s result it means
    Linkerd's default (no timeout, no limit, or no such plugin installed).
    C{protocol} is what the protocol plugin's C{parseClientConfig} returned.
    """

    loadBalancer: PluginConfig | None = None
    failureAccrual: PluginConfig | None = None
    hostConnectionPool: HostConnectionPool | None = None
    clientSession: Session | None = None
    socketOptions: SocketOptions | None = None
    failFast: bool | None = None
    requeueBudget: RetryBudget | None = None
    requestAttemptTimeoutMs: int | None = None
    tls: ClientTLS | None = None
    protocol: object = attrs.field(default=None, metadata={KEY_BY_KEY: True})

    def withCaptures(self, captured: dict[str, str]) -> ClientParams:
        """These parameters with their prefix's C{captured} variables substituted."""
        if self.tls is None:
            return self
        return attrs.evolve(self, tls=self.tls.withCaptures(captured))


DEFAULT_LOAD_BALANCER = {"kind": "p2c"}
DEFAULT_FAILURE_ACCRUAL = {"kind": "io.l5d.consecutiveFailures"}


def parseClientPolicy(section: Section, protocolPlugin: Any) -> PrefixedPolicy[ClientParams]:
    """
    Parse a router's C{client} section.
    """

    def params(s: Section) -> ClientParams:
        tls = None
        if s.has("tls"):
            prefix = s.get("prefix", (str, int, float, bool, list, dict))  # reported elsewhere
            variables = _CAPTURE.findall(prefix) if isinstance(prefix, str) else ()
            tls = parseClientTLS(s.section("tls"), variables)
        return ClientParams(
            loadBalancer=s.plugin("loadBalancer", ILoadBalancerPlugin),
            failureAccrual=s.plugin("failureAccrual", IFailureAccrualPlugin),
            hostConnectionPool=_optional(s, "hostConnectionPool", parsePool),
            clientSession=_optional(s, "clientSession", parseSession),
            socketOptions=_optional(s, "socketOptions", parseSocketOptions),
            failFast=s.get("failFast", bool),
            requeueBudget=_optional(s, "requeueBudget", parseBudget),
            requestAttemptTimeoutMs=nonNegative(s, "requestAttemptTimeoutMs"),
            tls=tls,
            protocol=protocolPlugin.parseClientConfig(s),
        )

    defaults = section.document.synthetic({}, section.path)
    base = ClientParams(
        loadBalancer=defaults.plugin("loadBalancer", ILoadBalancerPlugin, DEFAULT_LOAD_BALANCER),
        failureAccrual=defaults.plugin(
            "failureAccrual", IFailureAccrualPlugin, DEFAULT_FAILURE_ACCRUAL
        ),
        hostConnectionPool=HostConnectionPool(),
        clientSession=Session(),
        failFast=False,
        requeueBudget=RetryBudget(),
    )
    return parsePolicy(section, base, params)


@attrs.frozen
class ServiceParams:
    """
    Per-service policy (a service is a destination path such as
    C{/svc/foo}).  C{None} as in L{ClientParams}.
    """

    totalTimeoutMs: int | None = None
    retries: Retries | None = None
    responseClassifier: PluginConfig | None = None
    protocol: object = attrs.field(default=None, metadata={KEY_BY_KEY: True})


def parseRetries(section: Section) -> Retries:
    return Retries(
        _optional(section, "budget", parseBudget) or RetryBudget(),
        _optional(section, "backoff", parseBackoff) or Backoff(),
    )


def parseServicePolicy(section: Section, protocolPlugin: Any) -> PrefixedPolicy[ServiceParams]:
    """
    Parse a router's C{service} section; response classifiers are looked up
    for the router's protocol.
    """
    protocol = protocolPlugin.kind

    def params(s: Section) -> ServiceParams:
        return ServiceParams(
            totalTimeoutMs=nonNegative(s, "totalTimeoutMs"),
            retries=_optional(s, "retries", parseRetries),
            responseClassifier=s.plugin(
                "responseClassifier", IResponseClassifierPlugin, protocol=protocol
            ),
            protocol=protocolPlugin.parseServiceConfig(s),
        )

    default = protocolPlugin.defaultClassifier
    defaults = section.document.synthetic({}, section.path)
    base = ServiceParams(
        retries=Retries(),
        responseClassifier=defaults.plugin(
            "responseClassifier",
            IResponseClassifierPlugin,
            {"kind": default} if default else None,
            protocol,
        ),
    )
    return parsePolicy(section, base, params)
