# -*- test-case-name: tests.test_client_balancer -*-
"""
C{requestAttemptTimeoutMs}: a deadline on each attempt, as a wrapper around
an endpoint client.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from linkrouter.interfaces import IClient, Status
from linkrouter.policy.timeouts import withTimeout


@implementer(IClient)
class AttemptTimeout:
    """
    Cancel an attempt that takes longer than C{timeout} seconds; it then
    fails with L{linkrouter.policy.RequestAttemptTimeout}, which failure
    accrual counts (unlike a cancellation by the caller).
    """

    def __init__(self, client: Any, timeout: float, clock: IReactorTime) -> None:
        self._client = client
        self._timeout = timeout
        self._clock = clock

    @property
    def status(self) -> Status:
        status: Status = self._client.status
        return status

    def __call__(self, request: object) -> Deferred[Any]:
        d: Deferred[Any] = self._client(request)
        return withTimeout(d, self._timeout, self._clock)

    def close(self) -> Deferred[Any]:
        d: Deferred[Any] = self._client.close()
        return d
