# -*- test-case-name: tests.test_namers_interpreters -*-
"""
Interpreters:

 - C{default}: binds through the dtab it is given (the router's dtab plus
   the request's local dtab), the configured namers and the system namers;
 - C{io.l5d.fs} (C{dtabFile}): the same, with the dtab of a file in front
   (C{fileDtab + dtab}).  The file is watched; an edit that does not parse,
   an unreadable file or a deleted one keeps the last good dtab and logs
   why.

Also the helpers the service builds namers and interpreters with
(L{buildNamer}, L{buildInterpreter}), which apply configured transformers.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from linkrouter.config import REQUIRED, Section
from linkrouter.interfaces import (
    IDelegator,
    IInterpreter,
    IInterpreterPlugin,
    IStatsReceiver,
)
from linkrouter.logs import logObserver
from linkrouter.naming import (
    PENDING,
    Activity,
    Bound,
    ConfiguredNamersInterpreter,
    Dtab,
    Failed,
    NameTree,
    Ok,
    ParseError,
    Path,
    State,
    reactorResolver,
)

from ._config import resolvePath
from ._watch import DirectoryWatch, Listing, inotifyAvailable

_log = Logger(namespace="linkrouter.namers.interpreters", observer=logObserver)


class DtabFileError(Exception):
    """The dtab file cannot be used and there is no last good dtab."""


def configuredNamers(context: Any) -> ConfiguredNamersInterpreter:
    """The interpreter over C{context.namers} and the system namers."""
    return ConfiguredNamersInterpreter(context.namers, reactorResolver(context.reactor))


@implementer(IInterpreter, IDelegator)
class FsDtabInterpreter:
    """
    Binds with C{fileDtab + dtab} through C{interpreter}; C{fileDtab} is the
    last good dtab of C{dtabFile}, read again whenever it changes.

    @ivar dtab: an L{Activity} of the file's dtab.
    @param reactor: the reactor to read inotify events with, or C{None} to
        poll every second.
    @param stats: receives C{stale} (1 while the file is broken and the last
        good dtab is used), C{read_errors} and C{parse_errors}.
    """

    def __init__(
        self,
        dtabFile: str,
        interpreter: ConfiguredNamersInterpreter,
        clock: Any,
        reactor: Any | None,
        stats: IStatsReceiver,
    ) -> None:
        self.dtabFile = dtabFile
        self.interpreter = interpreter
        directory, self._name = os.path.split(dtabFile)
        self._broken: str | None = None
        self._parsed: tuple[bytes, State[Dtab]] | None = None
        self._lastGood: Dtab | None = None
        self._parseErrors = stats.counter("parse_errors")
        self.watch = DirectoryWatch(directory, clock, reactor, stats, only=self._name)
        # Replaces the watch's own C{stale}: this one also covers parse errors.
        stats.addGauge(("stale",), lambda: 1.0 if self._broken is not None else 0.0)
        self.dtab: Activity[Dtab] = Activity(self.watch.listing.map(self._dtabState))

    def _dtabState(self, listing: Listing) -> State[Dtab]:
        if listing.contents is None:
            if listing.error is None:
                return PENDING
            return self._keep(f"cannot read its directory: {listing.error}")
        data = listing.contents.get(self._name)
        error = listing.fileErrors.get(self._name) or listing.error
        if error is not None:
            return self._keep(f"cannot read it: {error}")
        if data is None:
            return self._keep("it does not exist")
        if self._parsed is None or self._parsed[0] != data:
            self._parsed = (data, self._parse(data))
        state = self._parsed[1]
        if type(state) is Failed:
            return self._keep(str(state.exception))
        if self._broken is not None:
            _log.info("{file}: dtab fixed", file=self.dtabFile)
            self._broken = None
        return state

    def _parse(self, data: bytes) -> State[Dtab]:
        try:
            dtab = Dtab.read(data.decode("utf-8"))
        except (ParseError, UnicodeDecodeError) as e:
            self._parseErrors.incr()
            return Failed(DtabFileError(f"not a dtab: {e}"))
        self._lastGood = dtab
        return Ok(dtab)

    def _keep(self, why: str) -> State[Dtab]:
        """Keep the last good dtab (if any) because of C{why}; log it once."""
        if self._broken != why:
            self._broken = why
            if self._lastGood is None:
                _log.error("{file}: {why}; no dtab to use yet", file=self.dtabFile, why=why)
            else:
                _log.error("{file}: {why}; keeping the last good dtab", file=self.dtabFile, why=why)
        if self._lastGood is None:
            return Failed(DtabFileError(f"dtab file {self.dtabFile}: {why}"))
        return Ok(self._lastGood)

    def bind(self, dtab: Dtab, path: Path) -> Activity[NameTree[Bound]]:  # type: ignore[override]
        return self.dtab.flatMap(lambda fileDtab: self.interpreter.bind(fileDtab + dtab, path))

    def delegate(self, dtab: Dtab, path: Path) -> Deferred[Any]:  # type: ignore[override]
        return self.dtab.whenReady().addCallback(
            lambda fileDtab: self.interpreter.delegate(fileDtab + dtab, path)
        )


@attrs.frozen
class FsInterpreterConfig:
    dtabFile: str


@implementer(IPlugin, IInterpreterPlugin)
class DefaultInterpreterPlugin:
    kind = "default"

    def parseConfig(self, section: Section) -> None:  # type: ignore[override]
        return None

    def build(self, config: object, context: Any) -> ConfiguredNamersInterpreter:  # type: ignore[override]
        return configuredNamers(context)


@implementer(IPlugin, IInterpreterPlugin)
class FsInterpreterPlugin:
    kind = "io.l5d.fs"

    def parseConfig(self, section: Section) -> FsInterpreterConfig:  # type: ignore[override]
        return FsInterpreterConfig(section.get("dtabFile", str, REQUIRED) or "")

    def build(self, config: FsInterpreterConfig, context: Any) -> FsDtabInterpreter:  # type: ignore[override]
        """
        @raise DtabFileError: the file's directory does not exist.
        """
        path = resolvePath(context.baseDir, config.dtabFile)
        if not os.path.isdir(os.path.dirname(path)):
            raise DtabFileError(f"io.l5d.fs interpreter: the directory of {path} does not exist")
        reactor = context.reactor
        return FsDtabInterpreter(
            path,
            configuredNamers(context),
            reactor,
            reactor if inotifyAvailable(reactor) else None,
            context.stats.scope("interpreter"),
        )


defaultInterpreter = DefaultInterpreterPlugin()
fsInterpreter = FsInterpreterPlugin()
