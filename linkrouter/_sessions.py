# -*- test-case-name: tests.test_http_sessions,tests.test_thrift_sessions -*-
"""
Connection lifetimes, the same for every protocol.

Outbound: L{PoolLimits} (Linkerd's C{hostConnectionPool} and
C{clientSession}) and L{IdleConnections}, the idle connections of one
endpoint's pool with the one timer that closes them.  Inbound:
L{SessionTimer}, the C{serverSession} idle time and lifetime of one accepted
connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from linkrouter.config import ClientParams, HostConnectionPool, Session

__all__ = ["UNLIMITED", "IdleConnections", "PoolLimits", "Pooled", "SessionTimer"]


@attrs.frozen
class PoolLimits:
    """
    How many connections an endpoint client keeps, and for how long
    (C{hostConnectionPool} and C{clientSession}; C{None}: no limit).

    @ivar idleTimeMs: the pool's: connections idle that long are closed,
        down to C{minSize}.
    @ivar sessionIdleTimeMs: the session's: connections idle that long are
        closed, whatever C{minSize}.
    @ivar lifeTimeMs: connections that old are closed once idle.
    """

    maxSize: int | None = None
    minSize: int = 0
    maxWaiters: int | None = None
    idleTimeMs: int | None = None
    sessionIdleTimeMs: int | None = None
    lifeTimeMs: int | None = None

    @classmethod
    def fromParams(cls, params: ClientParams) -> PoolLimits:
        pool = params.hostConnectionPool or HostConnectionPool()
        session = params.clientSession or Session()
        return cls(
            pool.maxSize,
            pool.minSize,
            pool.maxWaiters,
            pool.idleTimeMs,
            session.idleTimeMs,
            session.lifeTimeMs,
        )


UNLIMITED = PoolLimits()
"""No limit on connections nor on their lifetimes."""


class Pooled(Protocol):
    """A pooled connection: when it was made and when it last finished a call."""

    born: float
    lastUsed: float


C = TypeVar("C", bound=Pooled)


def _seconds(ms: int | None) -> float | None:
    return ms / 1000 if ms is not None else None


class IdleConnections(Generic[C]):
    """
    The idle connections of one endpoint pool, the most recently used last,
    and one timer that closes those past their idle time or lifetime (the
    least recently used first; the pool's idle time spares C{minSize} of
    the pool's C{size()} connections, the session's does not).

    @param close: closes a connection (it has been taken out of the idle
        list; the pool counts it until it is lost).
    @param size: how many connections the pool has open.
    """

    def __init__(
        self,
        limits: PoolLimits,
        clock: IReactorTime,
        close: Callable[[C], object],
        size: Callable[[], int],
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._close = close
        self._size = size
        self._conns: list[C] = []
        self._reaper: IDelayedCall | None = None
        self._poolIdle = _seconds(limits.idleTimeMs)
        self._sessionIdle = _seconds(limits.sessionIdleTimeMs)
        self._lifeLimit = _seconds(limits.lifeTimeMs)
        self._timed = any(
            s is not None for s in (self._poolIdle, self._sessionIdle, self._lifeLimit)
        )

    def __len__(self) -> int:
        return len(self._conns)

    def made(self, conn: C) -> None:
        """C{conn} has just connected."""
        if self._timed:
            conn.born = conn.lastUsed = self._clock.seconds()

    def expired(self, conn: C) -> bool:
        """Whether C{conn} is past its lifetime (it must not take another call)."""
        life = self._lifeLimit
        return life is not None and self._clock.seconds() - conn.born >= life

    def rest(self, conn: C) -> None:
        """Keep C{conn}, which has just finished a call and is not expired."""
        self._conns.append(conn)
        if self._timed:
            now = conn.lastUsed = self._clock.seconds()
            if self._reaper is None:
                self._reaper = self._clock.callLater(self._deadline(conn, False) - now, self._reap)

    def pop(self) -> C | None:
        """Take the most recently used idle connection, if any."""
        return self._conns.pop() if self._conns else None

    def discard(self, conn: C) -> None:
        """C{conn} is gone."""
        if conn in self._conns:
            self._conns.remove(conn)

    def stop(self) -> list[C]:
        """Stop the timer; take every idle connection."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        conns, self._conns = self._conns, []
        return conns

    def _deadline(self, conn: C, keep: bool) -> float:
        """When idle C{conn} must be closed (C{keep}: it is within C{minSize})."""
        deadline = float("inf")
        if self._lifeLimit is not None:
            deadline = conn.born + self._lifeLimit
        if self._sessionIdle is not None:
            deadline = min(deadline, conn.lastUsed + self._sessionIdle)
        if self._poolIdle is not None and not keep:
            deadline = min(deadline, conn.lastUsed + self._poolIdle)
        return deadline

    def _reap(self) -> None:
        self._reaper = None
        now = self._clock.seconds()
        remaining = self._size()
        soonest = float("inf")
        for conn in list(self._conns):
            deadline = self._deadline(conn, remaining <= self.limits.minSize)
            if deadline <= now:
                self._conns.remove(conn)
                self._close(conn)
                remaining -= 1
            else:
                soonest = min(soonest, deadline)
        if soonest != float("inf"):
            self._reaper = self._clock.callLater(soonest - now, self._reap)


class SessionTimer:
    """
    The C{serverSession} limits of one accepted connection.  Once nothing
    has happened on it for C{idleTimeMs} (see L{touch}) while it is not
    C{busy()}, C{idle()} is called; once it is C{lifeTimeMs} old, L{expired}
    becomes true and C{expire()} is called: the connection closes after the
    work in progress.
    """

    def __init__(
        self,
        session: Session,
        clock: IReactorTime,
        busy: Callable[[], bool],
        idle: Callable[[], object],
        expire: Callable[[], object],
    ) -> None:
        self._idleTime = _seconds(session.idleTimeMs)
        self._lifeTime = _seconds(session.lifeTimeMs)
        self._clock = clock
        self._busy = busy
        self._idle = idle
        self._expire = expire
        self._lastActive = 0.0
        self._idleTimer: IDelayedCall | None = None
        self._lifeTimer: IDelayedCall | None = None
        self.expired = False

    def start(self) -> None:
        """The connection is made: start counting."""
        clock = self._clock
        if self._idleTime is not None:
            self._lastActive = clock.seconds()
            self._idleTimer = clock.callLater(self._idleTime, self._checkIdle)
        if self._lifeTime is not None:
            self._lifeTimer = clock.callLater(self._lifeTime, self._onExpire)

    def touch(self) -> None:
        """Something was read or answered: the idle time counts from now."""
        if self._idleTimer is not None:
            self._lastActive = self._clock.seconds()

    def stop(self) -> None:
        """The connection is closed: cancel the timers."""
        for timer in (self._idleTimer, self._lifeTimer):
            if timer is not None and timer.active():
                timer.cancel()
        self._idleTimer = self._lifeTimer = None

    def _checkIdle(self) -> None:
        idle = self._idleTime
        assert idle is not None
        now = self._clock.seconds()
        due = self._lastActive + idle
        if not self._busy() and now >= due:
            self._idleTimer = None
            self._idle()
            return
        delay = due - now if now < due else idle
        self._idleTimer = self._clock.callLater(delay, self._checkIdle)

    def _onExpire(self) -> None:
        self._lifeTimer = None
        self.expired = True
        self._expire()
