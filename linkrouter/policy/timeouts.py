# -*- test-case-name: tests.test_policy_timeouts -*-
"""
Timeouts and deadlines.

Three limits bound a request:

 - C{requestAttemptTimeoutMs} (client): one attempt; L{RequestAttemptTimeout}.
   A read request that hit it may be retried.
 - C{totalTimeoutMs} (service): every attempt and backoff together;
   L{TotalTimeout}.  Never retried.
 - the propagated deadline (C{l5d-ctx-deadline}): what the caller upstream
   still allows; L{DeadlineExceeded}.  Never retried.

All three are L{RequestTimeout}s, which a protocol answers with its
"gateway timeout" (HTTP 504).

A L{Deadline} is written as Linkerd (Finagle) does: two decimal integers,
nanoseconds since the epoch, separated by one space,
C{"<timestamp> <deadline>"}: when the deadline was set and when it expires.
Times come from the injected clock, which must be wall-clock time
(C{reactor.seconds()}) for deadlines to mean anything across hosts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

T = TypeVar("T")

NANOS = 1_000_000_000

DEADLINE_HEADER = b"l5d-ctx-deadline"
"""The HTTP header that carries a L{Deadline} between routers."""


class RequestTimeout(Exception):
    """
    A request ran out of time.  The message names the limit; protocols map
    every subclass to their timeout answer (HTTP 504).

    @ivar seconds: the limit that was exceeded.
    """

    limit = "request timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"{self.limit} of {seconds * 1000:.0f} ms exceeded")
        self.seconds = seconds


class RequestAttemptTimeout(RequestTimeout):
    """One attempt exceeded C{requestAttemptTimeoutMs}; it may be retried."""

    limit = "request attempt timeout"


class TotalTimeout(RequestTimeout):
    """The request, retries included, exceeded C{totalTimeoutMs}."""

    limit = "total timeout"


class DeadlineExceeded(RequestTimeout):
    """The deadline propagated by the caller passed (or had passed on arrival)."""

    limit = "propagated deadline"


def withTimeout(
    d: Deferred[T],
    seconds: float,
    clock: IReactorTime,
    error: Callable[[float], Exception] = RequestAttemptTimeout,
) -> Deferred[T]:
    """
    Cancel C{d} if it has not fired after C{seconds}, and fail it with
    C{error(seconds)} instead of L{CancelledError}.  Cancelling C{d} lets its
    owner drop the work in flight (a client closes the connection rather than
    reusing it).  A caller's own C{cancel()} still yields L{CancelledError}.

    @return: C{d}, for chaining.
    """

    def translate(result: T | Failure, timeout: float) -> T:
        if isinstance(result, Failure):
            result.trap(CancelledError)
            raise error(timeout) from result.value
        return result

    return d.addTimeout(seconds, clock, onTimeoutCancel=translate)


_DEADLINE = re.compile(r"(\d{1,19}) (\d{1,19})")


def _nanos(seconds: float) -> int:
    return round(seconds * NANOS)


@attrs.frozen
class Deadline:
    """
    When a request's deadline was set (C{timestamp}) and when it expires
    (C{deadline}), both in integer nanoseconds since the epoch.
    """

    timestamp: int
    deadline: int

    @classmethod
    def ofTimeout(cls, seconds: float, clock: IReactorTime) -> Deadline:
        """A deadline C{seconds} from now."""
        now = _nanos(clock.seconds())
        return cls(now, now + _nanos(seconds))

    @classmethod
    def parse(cls, text: bytes | str) -> Deadline:
        """
        Read C{"<timestamp> <deadline>"}.

        @raise ValueError: the text is not two decimal integers separated by
            one space.
        """
        if isinstance(text, bytes):
            text = text.decode("latin-1")
        m = _DEADLINE.fullmatch(text.strip())
        if m is None:
            raise ValueError(f"malformed deadline {text[:80]!r}: expected '<timestamp> <deadline>'")
        return cls(int(m.group(1)), int(m.group(2)))

    @property
    def show(self) -> str:
        """The header value."""
        return f"{self.timestamp} {self.deadline}"

    def remaining(self, clock: IReactorTime) -> float:
        """Seconds left (negative once expired)."""
        return (self.deadline - _nanos(clock.seconds())) / NANOS

    def expired(self, clock: IReactorTime) -> bool:
        return self.remaining(clock) <= 0

    def combined(self, other: Deadline) -> Deadline:
        """The stricter deadline with the later timestamp (as Finagle combines them)."""
        return Deadline(max(self.timestamp, other.timestamp), min(self.deadline, other.deadline))


def readDeadline(values: Iterable[bytes | str]) -> Deadline | None:
    """
    The combined deadline of every well-formed header value, or C{None}.
    Malformed values are ignored, as Linkerd ignores them: a bad context
    header from a caller never fails its request.
    """
    found: Deadline | None = None
    for value in values:
        try:
            d = Deadline.parse(value)
        except ValueError:
            continue
        found = d if found is None else found.combined(d)
    return found


def outgoingDeadline(
    incoming: Deadline | None, totalTimeout: float | None, clock: IReactorTime
) -> Deadline | None:
    """
    The deadline to send downstream: the earlier of the caller's deadline
    and now plus the total timeout (C{None} when neither exists).
    """
    local = None if totalTimeout is None else Deadline.ofTimeout(totalTimeout, clock)
    if incoming is None:
        return local
    return incoming if local is None else incoming.combined(local)
