# -*- test-case-name: tests.test_namers_fs -*-
"""
The C{io.l5d.fs} namer: one file per service in C{rootDir}, one address
per line.

    # comments and blank lines are allowed
    192.0.2.220 8080
    192.0.2.210 8080 * 2.0

C{/#/<prefix>/<file>/<rest...>} binds to the file's addresses with the id
C{/#/<prefix>/<file>} and the residual C{/<rest...>}; a missing file is
negative (C{~}).  The directory is watched while a binding uses it (see
L{namers._watch}); a line that does not parse is logged and skipped, and
an unreadable directory or file keeps its last good addresses.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, cast

import attrs
from twisted.logger import Logger
from twisted.plugin import IPlugin
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

from ._config import experimental, namerIdPrefix, resolvePath
from ._watch import DirectoryWatch, Listing, inotifyAvailable

_log = Logger(namespace="linkrouter.namers.fs", observer=logObserver)

_HOST = re.compile(r"[A-Za-z0-9_.:%-]+")


class FsNamerError(Exception):
    """The namer's directory cannot be used."""


def parseAddress(line: str) -> Address | str:
    """
    One address line (comment already removed): C{host port} or
    C{host port * weight}.  Returns the address, or why the line is wrong.
    """
    tokens = line.split()
    if len(tokens) not in (2, 4) or (len(tokens) == 4 and tokens[2] != "*"):
        return "expected 'host port' or 'host port * weight'"
    host = tokens[0]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not _HOST.fullmatch(host):
        return f"not a host: {tokens[0]!r}"
    if not tokens[1].isdigit() or not 0 < int(tokens[1]) <= 65535:
        return f"not a port (1-65535): {tokens[1]!r}"
    port = int(tokens[1])
    if len(tokens) == 2:
        return Address(host, port)
    try:
        weight = float(tokens[3])
    except ValueError:
        weight = -1.0
    if not (math.isfinite(weight) and weight >= 0):
        return f"not a weight (a non-negative number): {tokens[3]!r}"
    return Address(host, port, frozenset([("weight", weight)]))


@attrs.frozen
class FsConfig:
    rootDir: str
    idPrefix: Path


@implementer(INamer)
class FsNamer:
    """
    Serves the files of C{rootDir}; see the module docstring.

    @param clock: schedules polls.
    @param reactor: the reactor to read inotify events with, or C{None} to
        poll every second.
    @param stats: receives C{stale}, C{files}, C{read_errors} and
        C{bad_lines}.
    """

    def __init__(
        self,
        rootDir: str,
        idPrefix: Path,
        clock: Any,
        reactor: Any | None,
        stats: IStatsReceiver,
    ) -> None:
        self.idPrefix = idPrefix
        self.watch = DirectoryWatch(rootDir, clock, reactor, stats)
        self._badLines = stats.counter("bad_lines")
        self._parsed: dict[str, tuple[bytes, Addr]] = {}
        self._addrs: dict[str, Var[Addr]] = {}

    def lookup(self, path: Path) -> Activity[NameTree[Any]]:  # type: ignore[override]
        if not path.elems:
            return Activity.value(NEG)
        name = os.fsdecode(path.elems[0])
        id = self.idPrefix + path.take(1)
        residual = path.drop(1)
        root = self.watch.root

        def state(listing: Listing) -> State[NameTree[Any]]:
            if listing.contents is None:
                if listing.error is None:
                    return PENDING
                return Failed(FsNamerError(f"{root}: cannot read the directory: {listing.error}"))
            if name in listing.contents or name in listing.fileErrors:
                return Ok(Leaf(Bound(id, self._addr(name), residual)))
            return Ok(NEG)

        return Activity(self.watch.listing.map(state))

    def _addr(self, name: str) -> Var[Addr]:
        """The one address variable of the file C{name}."""
        var = self._addrs.get(name)
        if var is None:

            def start(update: Any) -> Any:
                return self.watch.listing.observe(lambda lst: update(self._addrOf(name, lst))).close

            var = self._addrs[name] = Var.watched(cast(Addr, ADDR_PENDING), start)
        return var

    def _addrOf(self, name: str, listing: Listing) -> Addr:
        if listing.contents is None:
            return ADDR_PENDING if listing.error is None else AddrFailed(listing.error)
        data = listing.contents.get(name)
        if data is None:
            error = listing.fileErrors.get(name)
            return ADDR_NEG if error is None else AddrFailed(f"{name}: {error}")
        parsed = self._parsed.get(name)
        if parsed is None or parsed[0] != data:
            parsed = self._parsed[name] = (data, self._parse(name, data))
        return parsed[1]

    def _parse(self, name: str, data: bytes) -> Addr:
        addresses = set()
        for number, raw in enumerate(data.split(b"\n"), 1):
            line = raw.split(b"#", 1)[0].strip()
            if not line:
                continue
            try:
                found = parseAddress(line.decode("utf-8"))
            except UnicodeDecodeError:
                found = "not UTF-8"
            if isinstance(found, str):
                self._badLines.incr()
                _log.warn(
                    "{root}/{name}:{line}: skipped: {reason}: {text!r}",
                    root=self.watch.root,
                    name=name,
                    line=number,
                    reason=found,
                    text=raw.decode("utf-8", "replace")[:200],
                )
                continue
            addresses.add(found)
        return AddrBound(frozenset(addresses))


@implementer(IPlugin, INamerPlugin)
class FsNamerPlugin:
    kind = "io.l5d.fs"
    defaultPrefix = "/io.l5d.fs"

    def parseConfig(self, section: Section) -> FsConfig:  # type: ignore[override]
        experimental(section, self.kind, required=False)
        rootDir = section.get("rootDir", str, REQUIRED)
        return FsConfig(rootDir or "", namerIdPrefix(section, self.defaultPrefix))

    def build(self, config: FsConfig, context: Any) -> FsNamer:  # type: ignore[override]
        """
        @raise FsNamerError: C{rootDir} is not a directory.
        """
        root = resolvePath(context.baseDir, config.rootDir)
        if not os.path.isdir(root):
            raise FsNamerError(f"io.l5d.fs: rootDir {root} is not a directory")
        reactor = context.reactor
        return FsNamer(
            root,
            config.idPrefix,
            reactor,
            reactor if inotifyAvailable(reactor) else None,
            context.stats,
        )


fsNamer = FsNamerPlugin()
