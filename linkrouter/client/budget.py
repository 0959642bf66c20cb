# -*- test-case-name: tests.test_client_budget -*-
"""
Finagle-style retry budget: a token bucket whose deposits expire.
"""

from __future__ import annotations

import math

from twisted.internet.interfaces import IReactorTime

from linkrouter.config import RetryBudget as RetryBudgetValue

# Tokens are counted in thousandths so that fractional percentages stay exact.
_SCALE = 1000


class RetryBudget:
    """
    Each request deposits C{percentCanRetry} of a token; each retry
    withdraws a whole one.  Deposits expire after C{ttlSecs}, and a reserve
    of C{minRetriesPerSec * ttlSecs} tokens is always available, which lets
    quiet clients retry at all.

    Deposits are kept in one bucket per second of the TTL, so memory is
    bounded and each operation is O(1) amortised.
    """

    def __init__(
        self,
        ttlSecs: int,
        minRetriesPerSec: int,
        percentCanRetry: float,
        clock: IReactorTime,
    ) -> None:
        if not 1 <= ttlSecs <= 60:
            raise ValueError(f"ttlSecs must be between 1 and 60, not {ttlSecs}")
        if minRetriesPerSec < 0:
            raise ValueError(f"minRetriesPerSec must be >= 0, not {minRetriesPerSec}")
        if not 0.0 <= percentCanRetry <= 1000.0:
            raise ValueError(f"percentCanRetry must be between 0 and 1000, not {percentCanRetry}")
        self._clock = clock
        self._ttl = ttlSecs
        self._depositAmount = round(percentCanRetry * _SCALE)
        # Without deposits, a withdrawal costs more than any balance: only
        # the reserve pays for retries.
        self._withdrawAmount = _SCALE if self._depositAmount else 1
        self._reserve = minRetriesPerSec * ttlSecs * self._withdrawAmount
        self._buckets = [0] * ttlSecs
        self._sum = 0
        self._second = math.floor(clock.seconds())

    @classmethod
    def fromConfig(cls, config: RetryBudgetValue, clock: IReactorTime) -> RetryBudget:
        """From a parsed C{requeueBudget} or C{retries.budget} section."""
        return cls(config.ttlSecs, config.minRetriesPerSec, config.percentCanRetry, clock)

    def _expire(self) -> None:
        now = math.floor(self._clock.seconds())
        elapsed = now - self._second
        if elapsed <= 0:
            return
        self._second = now
        buckets = self._buckets
        if elapsed >= self._ttl:
            buckets[:] = [0] * self._ttl
            self._sum = 0
            return
        for step in range(1, elapsed + 1):
            index = (now - elapsed + step) % self._ttl
            self._sum -= buckets[index]
            buckets[index] = 0

    def deposit(self) -> None:
        """Credit the budget for one request."""
        if self._depositAmount:
            self._expire()
            self._buckets[self._second % self._ttl] += self._depositAmount
            self._sum += self._depositAmount

    def tryWithdraw(self) -> bool:
        """Take one retry from the budget; C{False} when it is exhausted."""
        self._expire()
        if self._sum + self._reserve < self._withdrawAmount:
            return False
        # Withdrawals are negative deposits in the current bucket, so they
        # expire with it and the reserve refills over the TTL.
        self._buckets[self._second % self._ttl] -= self._withdrawAmount
        self._sum -= self._withdrawAmount
        return True

    @property
    def balance(self) -> int:
        """Whole retries available now."""
        self._expire()
        return max(0, (self._sum + self._reserve) // self._withdrawAmount)
