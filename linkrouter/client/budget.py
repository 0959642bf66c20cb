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
        self._ttl = ttlSecs
        self._depositAmount = round(percentCanRetry * _SCALE)
        # Without deposits, a withdrawal costs more than any balance: only
        # the reserve pays for retries.
        self._withdrawAmount = _SCALE if self._depositAmount else 1
        self._reserve = minRetriesPerSec * ttlSecs * self._withdrawAmount
        self._buckets = [0] * ttlSecs
        self._sum = 0
        self._seconds = clock.seconds
        # The current second, its bucket, and when the next one starts: a
        # deposit within the same second is a comparison and two additions.
        self._second = math.floor(clock.seconds())
        self._index = self._second % ttlSecs
        self._next = self._second + 1

    @classmethod
    def fromConfig(cls, config: RetryBudgetValue, clock: IReactorTime) -> RetryBudget:
        """From a parsed C{requeueBudget} or C{retries.budget} section."""
        return cls(config.ttlSecs, config.minRetriesPerSec, config.percentCanRetry, clock)

    def _expire(self, now: float) -> None:
        """Move to the second of C{now}, dropping the buckets that expired."""
        second = math.floor(now)
        elapsed = second - self._second
        if elapsed <= 0:
            return  # the clock went back: keep the current second
        buckets = self._buckets
        ttl = self._ttl
        if elapsed >= ttl:
            buckets[:] = [0] * ttl
            self._sum = 0
        else:
            for passed in range(self._second + 1, second + 1):
                index = passed % ttl
                self._sum -= buckets[index]
                buckets[index] = 0
        self._second = second
        self._index = second % ttl
        self._next = second + 1

    def deposit(self, now: float | None = None) -> None:
        """
        Credit the budget for one request.

        @param now: the clock's time, when the caller has just read it.
        """
        amount = self._depositAmount
        if amount:
            if now is None:
                now = self._seconds()
            if now >= self._next:
                self._expire(now)
            self._buckets[self._index] += amount
            self._sum += amount

    def tryWithdraw(self) -> bool:
        """Take one retry from the budget; C{False} when it is exhausted."""
        self._expire(self._seconds())
        if self._sum + self._reserve < self._withdrawAmount:
            return False
        # Withdrawals are negative deposits in the current bucket, so they
        # expire with it and the reserve refills over the TTL.
        self._buckets[self._index] -= self._withdrawAmount
        self._sum -= self._withdrawAmount
        return True

    @property
    def balance(self) -> int:
        """Whole retries available now."""
        self._expire(self._seconds())
        return max(0, (self._sum + self._reserve) // self._withdrawAmount)
