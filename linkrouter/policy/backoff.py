# -*- test-case-name: tests.test_policy_backoff -*-
"""
Retry backoffs: infinite iterators of delays in seconds, one per retry.

A backoff is stateful (the jittered one remembers its previous delay), so a
L{BackoffFactory} makes a fresh one for each request.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from itertools import repeat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from linkrouter.config import Backoff as BackoffConfig

Backoff = Iterator[float]
BackoffFactory = Callable[[], Backoff]


def constant(ms: float) -> Backoff:
    """
    The same delay before every retry.

    @raise ValueError: C{ms} is negative.
    """
    if ms < 0:
        raise ValueError(f"backoff must not be negative: {ms} ms")
    return repeat(ms / 1000)


def jittered(minMs: float, maxMs: float, rng: random.Random | None = None) -> Backoff:
    """
    Decorrelated jitter (as Finagle's C{Backoff.decorrelatedJittered}): the
    first delay is C{minMs}; each next one is drawn uniformly between
    C{minMs} and three times the previous delay, capped at C{maxMs}.

    @param rng: the random source (C{random.Random()} if omitted); inject a
        seeded one for reproducible tests.
    @raise ValueError: C{minMs} is negative or exceeds C{maxMs}.
    """
    if minMs < 0 or minMs > maxMs:
        raise ValueError(f"jittered backoff needs 0 <= minMs <= maxMs, got {minMs} and {maxMs}")
    draw = (rng or random.Random()).uniform

    def delays() -> Backoff:
        current = minMs
        while True:
            yield current / 1000
            current = draw(minMs, min(current * 3, maxMs))

    return delays()


def fromConfig(config: BackoffConfig, rng: random.Random | None = None) -> Backoff:
    """
    A fresh backoff for a C{backoff:} section (retries and failure accrual
    share the shape: C{constant} with C{ms}, C{jittered} with C{minMs} and
    C{maxMs}).
    """
    if config.kind == "jittered":
        return jittered(config.minMs, config.maxMs, rng)
    return constant(config.minMs)
