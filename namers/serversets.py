# -*- test-case-name: tests.test_namers_serversets -*-
"""
The C{io.l5d.serversets} namer: services registered in ZooKeeper
serversets, as Finagle and Twitter commons servers announce themselves.

    namers:
    - kind: io.l5d.serversets
      zkAddrs:
      - host: 127.0.0.1
        port: 2181

C{/#/<prefix>/<zk path...>} reads the serverset at the znode C{/<zk
path...>}: each child named C{member_...} holds one member's JSON,

    {"serviceEndpoint": {"host": "10.0.0.1", "port": 8080},
     "additionalEndpoints": {"admin": {"host": "10.0.0.1", "port": 9990}},
     "status": "ALIVE", "shard": 0}

and the members whose status is C{ALIVE} are the addresses (with their
C{shard_id} as metadata).  A last segment C{<name>:<endpoint>} selects the
named additional endpoint instead of the service endpoint.

Binding tries the whole path first; while that serverset has no address
(missing znode, no live member), it falls back to one segment less, the
rest becoming the residual: C{/discovery/prod/web/x/y} binds
C{/#/<prefix>/discovery/prod/web} with residual C{/x/y}.  Nothing left is
negative.  Serversets deeper than L{MAX_DEPTH} segments are not looked for.

The serversets are watched in ZooKeeper only while a binding uses them.
When the connection or the session is lost, the last addresses seen are
kept (the C{stale} gauge counts the serversets served that way) and
everything is read again on reconnection.  Call L{ServersetsNamer.close}
when the router stops.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from linkrouter.config import REQUIRED, Section
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
    Failed,
    Leaf,
    NameTree,
    Ok,
    Path,
    State,
    Var,
)

from ._config import experimental, namerIdPrefix

if TYPE_CHECKING:
    from ._zk import ZkSession

_log = Logger(namespace="linkrouter.namers.serversets", observer=logObserver)

MEMBER_PREFIX = "member_"
"""Children of a serverset znode that are members."""

RETRY_DELAY = 5.0
"""Seconds before reading a serverset again after an error other than a disconnection."""

DEFAULT_ZK_PORT = 2181

MAX_DEPTH = 32
"""Znode depth at most of a serverset: longer names start binding at this depth."""


class ServersetError(Exception):
    """A serverset cannot be read."""


HostPort = tuple[str, int]


@attrs.frozen
class Member:
    """One parsed C{member_} znode."""

    status: str
    shard: int | None
    service: HostPort | None
    additional: tuple[tuple[str, HostPort], ...] = ()

    def endpoint(self, name: str | None) -> HostPort | None:
        """The service endpoint (C{name=None}) or the named additional one."""
        if name is None:
            return self.service
        return dict(self.additional).get(name)


def _hostPort(value: object) -> HostPort | None:
    if not isinstance(value, dict):
        return None
    host, port = value.get("host"), value.get("port")
    if not isinstance(host, str) or not host or type(port) is not int or not 0 < port <= 65535:
        return None
    return host, port


def parseMember(data: bytes) -> Member | str:
    """A member's JSON, or why it is not one."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        return f"not JSON: {e}"
    if not isinstance(doc, dict):
        return "not a JSON object"
    status = doc.get("status")
    shard = doc.get("shard")
    additional = doc.get("additionalEndpoints")
    endpoints = []
    if isinstance(additional, dict):
        for name, value in additional.items():
            found = _hostPort(value)
            if found is not None:
                endpoints.append((name, found))
    return Member(
        status if isinstance(status, str) else "UNKNOWN",
        shard if type(shard) is int else None,
        _hostPort(doc.get("serviceEndpoint")),
        tuple(sorted(endpoints)),
    )


@attrs.frozen
class Snapshot:
    """
    What a serverset watch last read: the members (C{None} until read
    once), or why it could not be read.
    """

    members: tuple[Member, ...] | None
    failure: str | None = None


def addrOf(snapshot: Snapshot, endpoint: str | None) -> Addr:
    """The addresses of C{endpoint} (C{None}: the service endpoint) of the live members."""
    if snapshot.members is None:
        return ADDR_PENDING if snapshot.failure is None else AddrFailed(snapshot.failure)
    addresses = set()
    for m in snapshot.members:
        found = m.endpoint(endpoint)
        if m.status == "ALIVE" and found is not None:
            meta = frozenset([("shard_id", m.shard)]) if m.shard is not None else frozenset()
            addresses.add(Address(found[0], found[1], meta))
    return AddrBound(frozenset(addresses)) if addresses else ADDR_NEG


def zkTarget(path: Path) -> tuple[str, str | None] | None:
    """
    The znode path and endpoint name C{path} names, or C{None} if no znode
    can have that name.
    """
    try:
        segments = [e.decode("utf-8") for e in path.elems]
    except UnicodeDecodeError:
        return None
    endpoint = None
    if segments and ":" in segments[-1]:
        segments[-1], endpoint = segments[-1].split(":", 1)
    for s in segments:
        if s in ("", ".", "..") or "\x00" in s or "/" in s:
            return None
    return "/" + "/".join(segments), endpoint


class _ServersetWatch:
    """The members of one serverset znode, read and watched while observed."""

    def __init__(self, namer: ServersetsNamer, path: str) -> None:
        self.namer = namer
        self.path = path
        self.current = Snapshot(None)
        self._update: Any = None
        self._unsubscribe: Any = None
        self._generation = 0
        self._syncing = False
        self._dirty = False
        self._retry: IDelayedCall | None = None
        self._lastError: str | None = None
        self._members: dict[str, Member | None] = {}
        self._changed: set[str] = set()
        self._addrs: dict[str | None, Var[Addr]] = {}
        session = namer.session
        self._childWatcher = session.watcher(self._onEvent)
        self._dataWatcher = session.watcher(self._onDataEvent)
        self.snapshot: Var[Snapshot] = Var.watched(self.current, self._start)

    @property
    def watching(self) -> bool:
        return self._update is not None

    @property
    def stale(self) -> bool:
        """Whether last known members are served while ZooKeeper is unreachable."""
        return (
            self.watching and self.current.members is not None and not self.namer.session.connected
        )

    def addr(self, endpoint: str | None) -> Var[Addr]:
        var = self._addrs.get(endpoint)
        if var is None:
            var = self._addrs[endpoint] = self.snapshot.map(lambda s: addrOf(s, endpoint))
        return var

    # -- lifecycle ---------------------------------------------------------

    def _start(self, update: Any) -> Any:
        self._update = update
        self._generation += 1
        self._unsubscribe = self.namer.session.subscribe(self._onConnection)
        return self._stop

    def _stop(self) -> None:
        # ZooKeeper's one-shot watches may still fire once: they are ignored.
        self._update = None
        self._generation += 1
        self._syncing = self._dirty = False
        self._members.clear()
        self._changed.clear()
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        self.cancelRetry()

    def cancelRetry(self) -> None:
        """Forget a scheduled retry after an error."""
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    def _onConnection(self, connected: bool) -> None:
        if connected:
            # Watches do not survive a lost connection: read everything again,
            # ignoring whatever the old connection may still deliver.
            self._generation += 1
            self._syncing = self._dirty = False
            self._members.clear()
            self._sync()
        elif self.current.members is None:
            self._publish(Snapshot(None, self.namer.session.failure))

    def _onEvent(self, event: Any) -> None:
        self._sync()

    def _onDataEvent(self, event: Any) -> None:
        self._changed.add(event.path.rsplit("/", 1)[-1])
        self._sync()

    # -- reading -----------------------------------------------------------

    def _sync(self) -> None:
        if self._update is None or not self.namer.session.connected:
            return
        if self._syncing:
            self._dirty = True
            return
        self._syncing, self._dirty = True, False
        generation = self._generation
        d = self._read(generation)
        d.addErrback(self._failed, generation)
        d.addBoth(self._synced, generation)

    @inlineCallbacks
    def _read(self, generation: int) -> Any:
        session = self.namer.session
        for name in self._changed:
            self._members.pop(name, None)
        self._changed.clear()
        children = yield session.children(self.path, self._childWatcher)
        if generation != self._generation:
            return
        names = sorted(c for c in children or () if c.startswith(MEMBER_PREFIX))
        unread = [n for n in names if n not in self._members]
        base = self.path.rstrip("/")
        results = yield DeferredList(
            [session.data(f"{base}/{n}", self._dataWatcher) for n in unread], consumeErrors=True
        )
        if generation != self._generation:
            return
        failed = False
        for name, (ok, result) in zip(unread, results, strict=True):
            if not ok:
                if session.isDisconnection(result):
                    return  # the reconnection reads it all again
                failed = True
                self._readError(f"{base}/{name}: {result.getErrorMessage()}")
            elif result is not None:
                self._members[name] = self._parse(f"{base}/{name}", result)
        for name in list(self._members):
            if name not in names:
                del self._members[name]
        if failed:
            self._retryLater()
        else:
            self._lastError = None
        self._publish(Snapshot(tuple(m for n in names if (m := self._members.get(n)) is not None)))

    def _parse(self, where: str, data: bytes) -> Member | None:
        found = parseMember(data)
        if isinstance(found, str):
            self.namer.parseErrors.incr()
            _log.warn("{where}: skipped: {reason}", where=where, reason=found[:200])
            return None
        return found

    def _failed(self, failure: Failure, generation: int) -> None:
        if generation != self._generation or self.namer.session.isDisconnection(failure):
            return
        reason = f"{self.path}: {failure.getErrorMessage()}"
        self._readError(reason)
        self._retryLater()
        if self.current.members is None:
            self._publish(Snapshot(None, reason))

    def _retryLater(self) -> None:
        if self.watching and (self._retry is None or not self._retry.active()):
            self._retry = self.namer.clock.callLater(RETRY_DELAY, self._sync)

    def _readError(self, reason: str) -> None:
        self.namer.readErrors.incr()
        if reason != self._lastError:
            self._lastError = reason
            _log.error("cannot read serverset {reason}", reason=reason)

    def _synced(self, ignored: object, generation: int) -> None:
        if generation != self._generation:
            return
        self._syncing = False
        if self._dirty:
            self._sync()

    def _publish(self, snapshot: Snapshot) -> None:
        self.current = snapshot
        if self._update is not None:
            self._update(snapshot)


@implementer(INamer)
class ServersetsNamer:
    """
    See the module docstring.

    @param session: the ZooKeeper session (L{namers._zk.ZkSession}); the
        namer owns it and closes it in L{close}.
    @param clock: schedules retries after read errors.
    @param stats: receives the C{stale} and C{observed_serversets} gauges
        and the C{member_parse_errors} and C{read_errors} counters.
    """

    def __init__(
        self, idPrefix: Path, session: ZkSession, clock: Any, stats: IStatsReceiver
    ) -> None:
        self.idPrefix = idPrefix
        self.session = session
        self.clock = clock
        self.parseErrors = stats.counter("member_parse_errors")
        self.readErrors = stats.counter("read_errors")
        self._watches: dict[str, _ServersetWatch] = {}
        stats.addGauge(("stale",), lambda: float(sum(w.stale for w in self._watches.values())))
        stats.addGauge(
            ("observed_serversets",),
            lambda: float(sum(w.watching for w in self._watches.values())),
        )

    def watch(self, zkPath: str) -> _ServersetWatch:
        """The one watch of the serverset at C{zkPath}."""
        watch = self._watches.get(zkPath)
        if watch is None:
            watch = self._watches[zkPath] = _ServersetWatch(self, zkPath)
        return watch

    def lookup(self, path: Path) -> Activity[NameTree[Any]]:  # type: ignore[override]
        return self._bind(path, min(len(path), MAX_DEPTH))

    def _bind(self, path: Path, n: int) -> Activity[NameTree[Any]]:
        """Bind the first C{n} segments of C{path}, or fewer while negative."""
        target = zkTarget(path.take(n))
        if target is None:
            return self._bind(path, n - 1) if n else Activity.value(NEG)
        zkPath, endpoint = target
        addr = self.watch(zkPath).addr(endpoint)
        bound = Bound(self.idPrefix + path.take(n), addr, path.drop(n))

        def state(value: Addr) -> State[Addr]:
            if value is ADDR_PENDING:
                return PENDING
            if isinstance(value, AddrFailed):
                return Failed(ServersetError(value.reason))
            return Ok(value)

        def tree(value: Addr) -> Activity[NameTree[Any]]:
            if value is not ADDR_NEG:
                return Activity.value(Leaf(bound))
            return self._bind(path, n - 1) if n else Activity.value(NEG)

        return Activity(addr.map(state)).flatMap(tree)

    def close(self) -> Deferred[None]:
        """Stop watching and close the ZooKeeper client."""
        for watch in self._watches.values():
            watch.cancelRetry()
        return self.session.close()


@attrs.frozen
class ServersetsConfig:
    idPrefix: Path
    zkAddrs: tuple[HostPort, ...]

    @property
    def connectString(self) -> str:
        return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.zkAddrs)


def parseZkAddrs(section: Section) -> tuple[HostPort, ...]:
    """C{zkAddrs}: a required, non-empty list of C{{host, port}} (port 2181 by default)."""
    if not section.has("zkAddrs"):
        section.error("required key is missing", "zkAddrs")
        return ()
    found = []
    entries = section.sections("zkAddrs")
    for entry in entries:
        host = entry.get("host", str, REQUIRED)
        port = entry.get("port", int, DEFAULT_ZK_PORT)
        if host is not None and (not host or any(c in host for c in ", /\t")):
            entry.error(f"must be a host name or IP address, not {host!r}", "host")
        elif port is not None and not 0 < port <= 65535:
            entry.error("must be a port number (1-65535)", "port")
        elif host is not None and port is not None:
            found.append((host.strip("[]"), port))
    if not entries and section.has("zkAddrs"):
        section.error("needs at least one ZooKeeper address", "zkAddrs")
    return tuple(found)


@implementer(IPlugin, INamerPlugin)
class ServersetsNamerPlugin:
    kind = "io.l5d.serversets"
    defaultPrefix = "/io.l5d.serversets"

    def parseConfig(self, section: Section) -> ServersetsConfig:  # type: ignore[override]
        experimental(section, self.kind, required=False)
        return ServersetsConfig(namerIdPrefix(section, self.defaultPrefix), parseZkAddrs(section))

    def build(self, config: ServersetsConfig, context: Any) -> ServersetsNamer:  # type: ignore[override]
        from ._zk import ZkSession

        session = ZkSession(config.connectString, context.reactor, context.stats)
        return ServersetsNamer(config.idPrefix, session, context.reactor, context.stats)


serversetsNamer = ServersetsNamerPlugin()
