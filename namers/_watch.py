# -*- test-case-name: tests.test_namers_fs -*-
"""
L{DirectoryWatch}: the files of one directory as an observable L{Listing},
kept current with inotify where the platform has it and by polling
otherwise, and only while somebody observes it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from typing import Any

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorFDSet, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from twisted.python.runtime import platform

from linkrouter.interfaces import IStatsReceiver
from linkrouter.logs import logObserver
from linkrouter.naming import Var

POLL_INTERVAL = 1.0
"""Seconds between two scans when polling."""

MAX_FILE_BYTES = 1024 * 1024
"""Files larger than this are not read (they are reported as errors)."""

_log = Logger(namespace="linkrouter.namers.watch", observer=logObserver)


@attrs.frozen
class Listing:
    """
    What a L{DirectoryWatch} last saw.

    @ivar contents: file name to content, or C{None} until the directory
        was read once.
    @ivar error: why the latest read of the directory failed, or C{None};
        C{contents} are then the last good ones.
    @ivar fileErrors: file name to why the latest read of that file failed;
        its entry in C{contents}, if any, is the last good content.
    """

    contents: Mapping[str, bytes] | None
    error: str | None = None
    fileErrors: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def stale(self) -> bool:
        """Whether some of this listing is a last good state kept after an error."""
        return self.error is not None or bool(self.fileErrors)


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def inotifyAvailable(reactor: object) -> bool:
    """Whether C{reactor} can watch directories with inotify here."""
    return bool(platform.supportsINotify()) and IReactorFDSet.providedBy(reactor)


class DirectoryWatch:
    """
    The regular files of C{root} (or only the file C{only}) as L{listing},
    a variable that is watched while observed.

    @param clock: schedules polls and coalesces events.
    @param reactor: the reactor to read inotify events with, or C{None} to
        poll every L{POLL_INTERVAL} seconds.
    @param stats: receives C{stale} (1 while a last good state is served),
        C{read_errors} and C{files}.
    """

    def __init__(
        self,
        root: str,
        clock: IReactorTime,
        reactor: Any | None,
        stats: IStatsReceiver,
        only: str | None = None,
    ) -> None:
        self.root = root
        self._clock = clock
        self._reactor = reactor
        self._only = only
        self._update: Any = None
        self._seen: dict[str, tuple[tuple[int, int, int, int], bytes]] = {}
        self._current = Listing(None)
        self._poller: LoopingCall | None = None
        self._notifier: Any = None
        self._pending: IDelayedCall | None = None
        self._readErrors = stats.counter("read_errors")
        stats.addGauge(("stale",), lambda: 1.0 if self._current.stale else 0.0)
        stats.addGauge(("files",), lambda: float(len(self._current.contents or ())))
        self.listing: Var[Listing] = Var.watched(self._current, self._start)

    @property
    def watching(self) -> bool:
        """Whether the directory is being watched (somebody observes it)."""
        return self._update is not None

    @property
    def usingInotify(self) -> bool:
        return self._notifier is not None

    # -- lifecycle ---------------------------------------------------------

    def _start(self, update: Any) -> Any:
        self._update = update
        armed = self._arm()
        self.scan()
        if not armed:
            self._startPolling()
        return self._stop

    def _stop(self) -> None:
        self._update = None
        self._stopPolling()
        self._disarm()
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None

    def _startPolling(self) -> None:
        if self._poller is None:
            self._poller = LoopingCall(self._poll)
            self._poller.clock = self._clock
            self._poller.start(POLL_INTERVAL, now=False)

    def _stopPolling(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None and poller.running:
            poller.stop()

    def _poll(self) -> None:
        # Arm first, so that no change between the scan and the watch is lost.
        if self._arm():
            self._stopPolling()
        self.scan()

    def _arm(self) -> bool:
        """Watch the directory with inotify; C{False} if that is not possible."""
        if self._reactor is None:
            return False
        if self._notifier is not None:
            return True
        from twisted.internet import inotify

        mask = (
            inotify.IN_CREATE
            | inotify.IN_DELETE
            | inotify.IN_MODIFY
            | inotify.IN_CLOSE_WRITE
            | inotify.IN_MOVED_FROM
            | inotify.IN_MOVED_TO
            | inotify.IN_ATTRIB
            | inotify.IN_DELETE_SELF
            | inotify.IN_MOVE_SELF
        )
        try:
            notifier = inotify.INotify(self._reactor)
        except Exception as e:
            _log.warn("{root}: inotify is not available ({e}); polling", root=self.root, e=e)
            self._reactor = None
            return False
        try:
            notifier.watch(FilePath(self.root), mask=mask, callbacks=[self._onEvent])
        except Exception:
            notifier.loseConnection()
            return False
        notifier.startReading()
        self._notifier = notifier
        return True

    def _disarm(self) -> None:
        notifier, self._notifier = self._notifier, None
        if notifier is not None and notifier.connected:
            notifier.loseConnection()

    def _onEvent(self, ignored: object, path: FilePath[Any], mask: int) -> None:
        from twisted.internet import inotify

        if self._update is None:
            return
        name = path.basename()
        self._seen.pop(
            name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name, None
        )
        if mask & (inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF | inotify.IN_UNMOUNT):
            # The watched directory is gone: poll until it is back.
            self._disarm()
            self._startPolling()
        if self._pending is None or not self._pending.active():
            self._pending = self._clock.callLater(0, self.scan)

    # -- reading -----------------------------------------------------------

    def scan(self) -> None:
        """Read what changed in the directory and publish the result."""
        previous = self._current
        try:
            entries = self._entries()
        except OSError as e:
            reason = _reason(e)
            if previous.error != reason:
                self._readErrors.incr()
                kept = len(previous.contents) if previous.contents is not None else 0
                _log.error(
                    "{root}: cannot read the directory: {reason}; keeping the last good state"
                    " ({kept} files)",
                    root=self.root,
                    reason=reason,
                    kept=kept,
                )
            self._publish(attrs.evolve(previous, error=reason))
            return
        if previous.error is not None:
            _log.info("{root}: readable again", root=self.root)
        contents: dict[str, bytes] = {}
        errors: dict[str, str] = {}
        old = previous.contents or {}
        for name, st in entries:
            key = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)
            seen = self._seen.get(name)
            if seen is not None and seen[0] == key:
                contents[name] = seen[1]
                continue
            data, error = self._read(name, st.st_size)
            if error is None:
                assert data is not None
                contents[name] = data
                self._seen[name] = (key, data)
                continue
            self._seen.pop(name, None)
            errors[name] = error
            if name in old:
                contents[name] = old[name]
            if previous.fileErrors.get(name) != error:
                self._readErrors.incr()
                _log.error(
                    "{root}/{name}: cannot read: {error}; keeping its last good content"
                    if name in old
                    else "{root}/{name}: cannot read: {error}",
                    root=self.root,
                    name=name,
                    error=error,
                )
        for name in list(self._seen):
            if name not in contents:
                del self._seen[name]
        self._publish(Listing(contents, None, errors))

    def _entries(self) -> list[tuple[str, os.stat_result]]:
        if self._only is not None:
            try:
                st = os.stat(os.path.join(self.root, self._only))
            except FileNotFoundError:
                os.stat(self.root)  # a missing directory is an error, a missing file is not
                return []
            return [(self._only, st)] if stat.S_ISREG(st.st_mode) else []
        found = []
        with os.scandir(self.root) as it:
            for entry in it:
                try:
                    if entry.is_file():
                        found.append((entry.name, entry.stat()))
                except OSError:
                    continue  # removed while listing
        return found

    def _read(self, name: str, size: int) -> tuple[bytes | None, str | None]:
        if size > MAX_FILE_BYTES:
            return None, f"larger than {MAX_FILE_BYTES} bytes"
        try:
            with open(os.path.join(self.root, name), "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            return None, _reason(e)
        if len(data) > MAX_FILE_BYTES:
            return None, f"larger than {MAX_FILE_BYTES} bytes"
        return data, None

    def _publish(self, listing: Listing) -> None:
        self._current = listing
        if self._update is not None:
            self._update(listing)
